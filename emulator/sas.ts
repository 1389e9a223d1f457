import {
  AccountSASPermissions,
  AccountSASResourceTypes,
  AccountSASServices,
  StorageSharedKeyCredential,
  generateAccountSASQueryParameters,
} from "@azure/storage-blob";
import { findStorageAccountByName, type Estate } from "./model";

/**
 * SAS datastores hold a real account SAS signed with the account's key1, so regenerating key1
 * really kills them on the data plane (which is why keyturn must report them).
 */
export async function signSasDatastores(estate: Estate): Promise<void> {
  for (const ws of estate.workspaces.values()) {
    for (const ds of ws.datastores.values()) {
      if (ds.credentials.credentialsType !== "Sas") continue;
      const account = findStorageAccountByName(estate, ds.accountName);
      if (!account) continue;
      const sas = generateAccountSASQueryParameters(
        {
          expiresOn: new Date(Date.now() + 365 * 86_400_000),
          permissions: AccountSASPermissions.parse("rl"),
          resourceTypes: AccountSASResourceTypes.parse("sco").toString(),
          services: AccountSASServices.parse("b").toString(),
        },
        new StorageSharedKeyCredential(account.name, account.keys.key1.value),
      );
      ds.credentials.secrets.sasToken = sas.toString();
    }
  }
}
