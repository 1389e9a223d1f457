import { XMLParser } from "fast-xml-parser";
import type { Emulator } from "../../emulator";
import { credentialFor } from "./emulator";

/** Service Management's token audience, as a scope. */
export const SERVICE_MANAGEMENT_SCOPE = "https://management.core.windows.net/.default";
export const SM_VERSION = "2009-10-01";
export const SM_XMLNS = "http://schemas.microsoft.com/windowsazure";

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "@",
  parseTagValue: false,
});

export interface SmAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The XML body parsed (attributes, xmlns included, under "@name"). */
  xml: Record<string, unknown>;
}

/** A token for Service Management (or another scope), for the emulator's keyturn principal or another one. */
export async function tokenFor(
  emulator: Emulator,
  scope = SERVICE_MANAGEMENT_SCOPE,
  principal?: { clientId: string; clientSecret: string },
): Promise<string> {
  const credential = credentialFor(emulator.connection, emulator.caCert, principal);
  return (await credential.getToken(scope)).token;
}

/** A raw HTTPS call to the emulator's Service Management endpoint; `x-ms-version` is sent unless overridden. */
export async function serviceManagement(
  emulator: Emulator,
  method: string,
  path: string,
  options: { body?: string; token?: string; headers?: Record<string, string> } = {},
): Promise<SmAnswer> {
  const { request } = await import("node:https");
  const url = new URL(`${emulator.connection.serviceManagementEndpoint}${path}`);
  const headers: Record<string, string> = { "x-ms-version": SM_VERSION, ...options.headers };
  if (options.body !== undefined) headers["content-type"] ??= "application/xml";
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  for (const [name, value] of Object.entries(headers)) if (value === "") delete headers[name];
  return new Promise((resolve, reject) => {
    const req = request(url, { method, ca: emulator.caCert, headers, agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => {
        let xml: Record<string, unknown> = {};
        try {
          xml = parser.parse(text) as Record<string, unknown>;
        } catch {
          xml = {};
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, xml });
      });
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

/** The RegenerateKeys body of seed 002. */
export function regenerateBody(keyType: string, xmlns = SM_XMLNS): string {
  return `<?xml version="1.0" encoding="utf-8"?>\n<RegenerateKeys xmlns="${xmlns}">\n  <KeyType>${keyType}</KeyType>\n</RegenerateKeys>`;
}

/** The keys path of a classic account. */
export function keysPath(emulator: Emulator, account: string): string {
  return `/${emulator.connection.subscriptionIds[0]!}/services/storageservices/${account}/keys`;
}

/** Primary and Secondary of a StorageService answer. */
export function storageServiceKeys(answer: SmAnswer): { primary: string; secondary: string } {
  const keys = (
    answer.xml.StorageService as { StorageServiceKeys?: { Primary?: string; Secondary?: string } }
  )?.StorageServiceKeys;
  if (!keys?.Primary || !keys.Secondary)
    throw new Error(`no StorageServiceKeys in a ${answer.status} answer`);
  return { primary: keys.Primary, secondary: keys.Secondary };
}

/** `<Error><Code/><Message/></Error>` of an answer. */
export function smError(answer: SmAnswer): { code?: string; message?: string; xmlns?: string } {
  const error = answer.xml.Error as { Code?: string; Message?: string; "@xmlns"?: string } | undefined;
  return { code: error?.Code, message: error?.Message, xmlns: error?.["@xmlns"] };
}
