import { ClientSecretCredential } from "@azure/identity";
import { StorageManagementClient } from "@azure/arm-storage";
import { AzureMachineLearningWorkspaces } from "@azure/arm-machinelearning";
import { BatchManagementClient } from "@azure/arm-batch";
import { SecretClient } from "@azure/keyvault-secrets";
import { startEmulator, type ConnectionInfo, type Emulator, type EmulatorOptions } from "../../emulator";
import type { RoleDefinition } from "../../emulator/rbac";

const ARM_SCOPE = "https://management.azure.com/.default";

/** Options that make the real SDK clients talk to the emulator: its endpoint and its CA, nothing else. */
export function clientOptions(connection: ConnectionInfo, caCert: string) {
  return {
    endpoint: connection.armEndpoint,
    credentialScopes: [ARM_SCOPE],
    tlsOptions: { ca: caCert },
  };
}

export function credentialFor(
  connection: ConnectionInfo,
  caCert: string,
  principal: { clientId: string; clientSecret: string } = connection,
): ClientSecretCredential {
  return new ClientSecretCredential(connection.tenantId, principal.clientId, principal.clientSecret, {
    authorityHost: connection.authorityHost,
    disableInstanceDiscovery: true,
    tlsOptions: { ca: caCert },
  });
}

export interface Clients {
  credential: ClientSecretCredential;
  storage: StorageManagementClient;
  ml: AzureMachineLearningWorkspaces;
  batch: BatchManagementClient;
  secrets(vaultName: string): SecretClient;
}

export function clientsFor(
  emulator: Emulator,
  principal: { clientId: string; clientSecret: string } = emulator.connection,
): Clients {
  const { connection, caCert } = emulator;
  const credential = credentialFor(connection, caCert, principal);
  const subscriptionId = connection.subscriptionIds[0]!;
  const options = clientOptions(connection, caCert);
  return {
    credential,
    storage: new StorageManagementClient(credential, subscriptionId, options),
    ml: new AzureMachineLearningWorkspaces(credential, subscriptionId, options),
    batch: new BatchManagementClient(credential, subscriptionId, options),
    secrets: (vaultName) => {
      const url = connection.vaults[vaultName];
      if (!url) throw new Error(`The emulator has no vault '${vaultName}'.`);
      return new SecretClient(url, credential, {
        disableChallengeResourceVerification: true,
        tlsOptions: { ca: caCert },
      });
    },
  };
}

/** Starts an emulator for a test file; stop it in afterAll. */
export async function startTestEmulator(
  options: EmulatorOptions = {},
): Promise<{ emulator: Emulator; clients: Clients }> {
  const emulator = await startEmulator(options);
  return { emulator, clients: clientsFor(emulator) };
}

/** A principal whose role has exactly these actions, and clients acting as it. */
export function principalWith(emulator: Emulator, actions: string[], dataActions: string[] = []): Clients {
  const role: RoleDefinition = {
    Name: `test-role-${Math.random().toString(36).slice(2)}`,
    Actions: actions,
    DataActions: dataActions,
  };
  const principal = emulator.addPrincipal(`test-${role.Name}`, role);
  return clientsFor(emulator, principal);
}

/** Calls the emulator's admin API (loopback, no auth) trusting its CA. */
export async function admin(
  emulator: Emulator,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: unknown }> {
  const { request } = await import("node:https");
  const url = new URL(`${emulator.connection.adminEndpoint}${path}`);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      // A fresh connection each time: a kept-alive one the server closed while a test waited hangs up.
      { method, ca: emulator.caCert, headers: { "content-type": "application/json" }, agent: false },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as unknown) : undefined }),
        );
      },
    );
    req.on("error", reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** A raw HTTPS call to the emulator (for malformed input the SDKs would never send). */
export async function raw(
  emulator: Emulator,
  method: string,
  path: string,
  options: { body?: string; token?: string; headers?: Record<string, string> } = {},
): Promise<{
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  text: string;
}> {
  const { request } = await import("node:https");
  const url = new URL(`${emulator.connection.armEndpoint}${path}`);
  const headers: Record<string, string> = { "content-type": "application/json", ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  return new Promise((resolve, reject) => {
    const req = request(url, { method, ca: emulator.caCert, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => {
        let body: unknown = undefined;
        try {
          body = text ? (JSON.parse(text) as unknown) : undefined;
        } catch {
          body = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text });
      });
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

export async function armToken(clients: Clients): Promise<string> {
  const token = await clients.credential.getToken(ARM_SCOPE);
  return token.token;
}
