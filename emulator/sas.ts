import { createHmac, randomBytes } from "node:crypto";
import {
  AccountSASPermissions,
  AccountSASResourceTypes,
  AccountSASServices,
  ContainerSASPermissions,
  StorageSharedKeyCredential,
  generateAccountSASQueryParameters,
  generateBlobSASQueryParameters,
} from "@azure/storage-blob";
import {
  findStorageAccountByName,
  type Estate,
  type KeyName,
  type SasRecipe,
  type StorageAccount,
} from "./model";

/**
 * SAS datastores hold real SAS tokens signed with their account's key1 when the data plane starts, so
 * regenerating key1 really kills them on the data plane. Which kind of SAS a datastore gets is its
 * credentials' `recipe` (an account SAS when absent).
 */

const DAY_MS = 86_400_000;

/** Signs every placeholder SAS; their signatures join `issued`, the keys the whole-run secret scan looks for. */
export async function signSasDatastores(estate: Estate, issued: Set<string>): Promise<void> {
  for (const ws of estate.workspaces.values()) {
    for (const ds of ws.datastores.values()) {
      if (ds.credentials.credentialsType !== "Sas" || ds.credentials.secrets.sasToken !== "") continue;
      const account = findStorageAccountByName(estate, ds.accountName);
      if (!account) continue;
      ds.credentials.secrets.sasToken = sign(
        ds.credentials.recipe ?? "account",
        account,
        ds.containerName,
        new Date(),
      );
      addSasSignature(issued, ds.credentials.secrets.sasToken);
    }
  }
}

function sign(recipe: SasRecipe, account: StorageAccount, container: string, now: Date): string {
  const credential = new StorageSharedKeyCredential(account.name, account.keys.key1.value);
  // Whole seconds: the form the service signs and keyturn reproduces.
  const startsOn = new Date(Math.floor(now.getTime() / 1000) * 1000 - DAY_MS);
  const accountSas = (expiresOn: Date) =>
    generateAccountSASQueryParameters(
      {
        startsOn,
        expiresOn,
        permissions: AccountSASPermissions.parse("rl"),
        resourceTypes: AccountSASResourceTypes.parse("sco").toString(),
        services: AccountSASServices.parse("b").toString(),
      },
      credential,
    ).toString();
  switch (recipe) {
    case "account":
      return accountSas(new Date(startsOn.getTime() + 365 * DAY_MS));
    case "expired":
      return accountSas(new Date(startsOn.getTime() + DAY_MS / 2));
    case "container":
      return generateBlobSASQueryParameters(
        {
          containerName: container,
          startsOn,
          expiresOn: new Date(startsOn.getTime() + 90 * DAY_MS),
          permissions: ContainerSASPermissions.parse("rl"),
        },
        credential,
      ).toString();
    case "userDelegation": {
      // Signed with a delegation key Entra ID would issue; the emulator's data plane cannot check it.
      const fields = new URLSearchParams({
        sv: "2025-07-05",
        se: new Date(startsOn.getTime() + 7 * DAY_MS).toISOString().replace(/\.\d{3}Z$/, "Z"),
        sr: "c",
        sp: "rl",
        skoid: "00000000-0000-0000-0000-00000000a11c",
        sktid: "00000000-0000-0000-0000-00000000feed",
        skt: startsOn.toISOString().replace(/\.\d{3}Z$/, "Z"),
        ske: new Date(startsOn.getTime() + 7 * DAY_MS).toISOString().replace(/\.\d{3}Z$/, "Z"),
        sks: "b",
        skv: "2025-07-05",
        sig: randomBytes(32).toString("base64"),
      });
      return fields.toString();
    }
  }
}

/**
 * Whether a SAS depends on an account key at all: not a user delegation SAS, not expired. Those that do
 * are consumers of the key that signed them.
 */
export function signedWithAccountKey(token: string, now: Date): boolean {
  const p = new URLSearchParams(token);
  const se = p.get("se");
  return !p.has("skoid") && p.has("sig") && (se === null || Date.parse(se) > now.getTime());
}

/**
 * Which live key signed a SAS, checked as the service checks it: the string-to-sign built from the
 * token's fields exactly as written (REST "Create an account SAS" / "Create a service SAS", versions
 * 2020-12-06 and later), HMAC-SHA256 with each key. Undefined when neither key did (it is dead).
 */
export function sasSigningKey(
  account: StorageAccount,
  token: string,
  container: string,
): KeyName | undefined {
  const p = new URLSearchParams(token);
  const f = (name: string) => p.get(name) ?? "";
  const stringToSign = p.has("ss")
    ? [account.name, f("sp"), f("ss"), f("srt"), f("st"), f("se"), f("sip"), f("spr"), f("sv"), f("ses"), ""]
    : [
        f("sp"),
        f("st"),
        f("se"),
        `/blob/${account.name}/${container}`,
        f("si"),
        f("sip"),
        f("spr"),
        f("sv"),
        f("sr"),
        "",
        f("ses"),
        f("rscc"),
        f("rscd"),
        f("rsce"),
        f("rscl"),
        f("rsct"),
      ];
  for (const keyName of ["key1", "key2"] as const) {
    const sig = createHmac("sha256", Buffer.from(account.keys[keyName].value, "base64"))
      .update(stringToSign.join("\n"), "utf8")
      .digest("base64");
    if (sig === p.get("sig")) return keyName;
  }
  return undefined;
}

export function addSasSignature(issued: Set<string>, token: string): void {
  const sig = new URLSearchParams(token).get("sig");
  if (sig) issued.add(sig);
}
