/**
 * Uses only the real Azure SDKs and an emulator connection file (`keyturn emulator --connection-file f.json`):
 * lists every datastore, reads their secrets, regenerates a storage key and checks that the data plane
 * refuses the old key while the other key still works. Prints fingerprints, never key values.
 *
 *   node dist/examples/sdk-walkthrough.js f.json
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { ClientSecretCredential } from "@azure/identity";
import { StorageManagementClient } from "@azure/arm-storage";
import { AzureMachineLearningWorkspaces } from "@azure/arm-machinelearning";
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";

interface Connection {
  armEndpoint: string;
  authorityHost: string;
  tenantId: string;
  clientId: string;
  clientSecret: string;
  subscriptionIds: string[];
  caCertFile: string;
}

export interface WalkthroughResult {
  workspaces: number;
  datastores: string[];
  secretsRead: number;
  regenerated: string;
  oldKeyStatus: number;
  otherKeyStatus: number;
}

const fingerprint = (value: string) => createHash("sha256").update(value).digest("hex").slice(0, 12);

async function probe(account: string, key: string, endpoint: string): Promise<number> {
  const client = new BlobServiceClient(endpoint, new StorageSharedKeyCredential(account, key), {
    retryOptions: { maxTries: 1 },
  });
  try {
    await client.getProperties();
    return 200;
  } catch (e) {
    return (e as { statusCode?: number }).statusCode ?? -1;
  }
}

export async function walkthrough(
  connectionFile: string,
  log: (line: string) => void,
): Promise<WalkthroughResult> {
  const c = JSON.parse(readFileSync(connectionFile, "utf8")) as Connection;
  const ca = readFileSync(c.caCertFile, "utf8");
  const tlsOptions = { ca };
  const credential = new ClientSecretCredential(c.tenantId, c.clientId, c.clientSecret, {
    authorityHost: c.authorityHost,
    disableInstanceDiscovery: true,
    tlsOptions,
  });
  const options = {
    endpoint: c.armEndpoint,
    credentialScopes: ["https://management.azure.com/.default"],
    tlsOptions,
  };
  const result: WalkthroughResult = {
    workspaces: 0,
    datastores: [],
    secretsRead: 0,
    regenerated: "",
    oldKeyStatus: 0,
    otherKeyStatus: 0,
  };
  let target: { group: string; account: string } | undefined;

  for (const subscriptionId of c.subscriptionIds) {
    const ml = new AzureMachineLearningWorkspaces(credential, subscriptionId, options);
    for await (const ws of ml.workspaces.listBySubscription()) {
      result.workspaces++;
      const group = ws.id!.split("/")[4]!;
      for await (const ds of ml.datastores.list(group, ws.name!)) {
        const props = ds.properties as {
          credentials: { credentialsType: string };
          accountName?: string;
          datastoreType: string;
        };
        result.datastores.push(`${ws.name!}/${ds.name!}`);
        if (
          props.credentials.credentialsType === "AccountKey" ||
          props.credentials.credentialsType === "Sas"
        ) {
          const secrets = (await ml.datastores.listSecrets(group, ws.name!, ds.name!)) as {
            secretsType: string;
            key?: string;
            sasToken?: string;
          };
          result.secretsRead++;
          log(
            `${ws.name!}/${ds.name!}: ${props.datastoreType} ${secrets.secretsType} ${fingerprint(secrets.key ?? secrets.sasToken ?? "")}`,
          );
          if (!target && props.credentials.credentialsType === "AccountKey" && props.accountName) {
            target = { group, account: props.accountName };
          }
        } else {
          log(
            `${ws.name!}/${ds.name!}: ${props.datastoreType} ${props.credentials.credentialsType} (no secret)`,
          );
        }
      }
    }
  }
  if (!target) throw new Error("No AccountKey datastore found: nothing to regenerate.");

  const storage = new StorageManagementClient(credential, c.subscriptionIds[0]!, options);
  const account = await storage.storageAccounts.getProperties(target.group, target.account);
  const before = await storage.storageAccounts.listKeys(target.group, target.account);
  const oldKey1 = before.keys!.find((k) => k.keyName === "key1")!.value!;
  const key2 = before.keys!.find((k) => k.keyName === "key2")!.value!;
  await storage.storageAccounts.regenerateKey(target.group, target.account, { keyName: "key1" });
  result.regenerated = `${target.account}/key1`;
  result.oldKeyStatus = await probe(target.account, oldKey1, account.primaryEndpoints!.blob!);
  result.otherKeyStatus = await probe(target.account, key2, account.primaryEndpoints!.blob!);
  log(
    `regenerated ${result.regenerated} (was ${fingerprint(oldKey1)}): old key -> ${result.oldKeyStatus}, key2 -> ${result.otherKeyStatus}`,
  );
  return result;
}

if (require.main === module) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write("usage: node dist/examples/sdk-walkthrough.js <connection-file>\n");
    process.exit(2);
  }
  walkthrough(file, (line) => process.stdout.write(line + "\n")).then(
    (r) => process.stdout.write(JSON.stringify(r) + "\n"),
    (e: unknown) => {
      process.stderr.write(`walkthrough failed: ${(e as Error).message}\n`);
      process.exitCode = 1;
    },
  );
}
