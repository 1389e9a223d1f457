import {
  AzureMachineLearningWorkspaces,
  type AccountKeyDatastoreCredentials,
  type AccountKeyDatastoreSecrets,
  type Datastore,
  type DatastoreCredentialsUnion,
  type DatastorePropertiesUnion,
  type SasDatastoreCredentials,
  type SasDatastoreSecrets,
} from "@azure/arm-machinelearning";
import { KeyturnError } from "../errors";
import { fingerprint, type Fingerprint } from "../rotation/fingerprint";
import { azureCall, OPERATIONS } from "./call";
import { armClientOptions, perSubscription, type AdapterOptions, type CloudProfile } from "./cloud";
import { datastoreRef, workspaceRef } from "./ids";

export type DatastoreCredentialsType = "AccountKey" | "Sas" | "None" | "Certificate" | "ServicePrincipal";

export interface DatastoreInfo {
  id: string;
  name: string;
  workspaceId: string;
  /** AzureBlob, AzureFile, AzureDataLakeGen2, AzureDataLakeGen1. */
  datastoreType: string;
  credentialsType: DatastoreCredentialsType | (string & {});
  /** The storage account's name (datastores do not record its id). */
  accountName?: string;
  /** Container, ADLS Gen2 filesystem or file share. */
  container?: string;
  /** The storage endpoint suffix (core.windows.net in Azure's public cloud). */
  endpoint?: string;
  isDefault: boolean;
  /** `systemData.lastModifiedAt`: changes on every write, so a datastore unchanged since it was verified needs no second secret read. */
  modifiedAt?: string;
}

export interface Datastores {
  /** Every datastore of the workspace, all pages. */
  list(workspaceId: string): Promise<DatastoreInfo[]>;
  get(datastoreId: string): Promise<DatastoreInfo>;
  /** Fingerprint of the stored account key (`listSecrets`); undefined when the secret is not an account key. */
  heldFingerprint(datastoreId: string, salt: string): Promise<Fingerprint | undefined>;
  /**
   * The stored account key itself (`listSecrets`), for a data-plane probe with exactly the key the
   * datastore holds. Same rule as `StorageKeys.withKey`: spent inside the activity, never returned.
   */
  heldKey(datastoreId: string): Promise<string | undefined>;
  /**
   * Re-registers the datastore in place with a new account key: GET, then PUT the same properties with new
   * credentials. Never delete and re-create (soft-deleted Key Vault secrets make the re-create fail).
   * Azure validates the key against the account before saving it.
   */
  putKey(datastoreId: string, key: string): Promise<void>;
  /**
   * The stored SAS token (`listSecrets`) of a Sas datastore; undefined for other credentials. A SAS is a
   * credential as much as a key: same rule as `heldKey`.
   */
  heldSas(datastoreId: string): Promise<string | undefined>;
  /** Re-registers a Sas datastore in place with a new SAS token, as `putKey` does with a key. */
  putSas(datastoreId: string, sasToken: string): Promise<void>;
}

export class ArmDatastores implements Datastores {
  private readonly client: (subscriptionId: string) => AzureMachineLearningWorkspaces;

  constructor(profile: CloudProfile, options: AdapterOptions = {}) {
    this.client = perSubscription(
      (subscriptionId) =>
        new AzureMachineLearningWorkspaces(
          profile.credential,
          subscriptionId,
          armClientOptions(profile, options),
        ),
    );
  }

  async list(workspaceId: string): Promise<DatastoreInfo[]> {
    const ref = workspaceRef(workspaceId);
    return azureCall(OPERATIONS.listDatastores, workspaceId, async () => {
      const datastores: DatastoreInfo[] = [];
      for await (const ds of this.client(ref.subscriptionId).datastores.list(ref.resourceGroup, ref.name)) {
        datastores.push(datastoreInfo(ds, workspaceId));
      }
      return datastores;
    });
  }

  async get(datastoreId: string): Promise<DatastoreInfo> {
    const ref = datastoreRef(datastoreId);
    return datastoreInfo(await this.getRaw(datastoreId), ref.workspaceId);
  }

  async heldFingerprint(datastoreId: string, salt: string): Promise<Fingerprint | undefined> {
    const key = await this.heldKey(datastoreId);
    return key ? fingerprint(key, salt) : undefined;
  }

  async heldKey(datastoreId: string): Promise<string | undefined> {
    const secrets = await this.listSecrets(datastoreId);
    if (secrets.secretsType !== "AccountKey") return undefined;
    return (secrets as AccountKeyDatastoreSecrets).key || undefined;
  }

  async heldSas(datastoreId: string): Promise<string | undefined> {
    const secrets = await this.listSecrets(datastoreId);
    if (secrets.secretsType !== "Sas") return undefined;
    return (secrets as SasDatastoreSecrets).sasToken || undefined;
  }

  async putKey(datastoreId: string, key: string): Promise<void> {
    const credentials: AccountKeyDatastoreCredentials = {
      credentialsType: "AccountKey",
      secrets: { secretsType: "AccountKey", key },
    };
    await this.putCredentials(datastoreId, credentials, key);
  }

  async putSas(datastoreId: string, sasToken: string): Promise<void> {
    const credentials: SasDatastoreCredentials = {
      credentialsType: "Sas",
      secrets: { secretsType: "Sas", sasToken },
    };
    await this.putCredentials(datastoreId, credentials, sasToken);
  }

  /** GET, then PUT the same properties with new credentials of the same type; `secret` is redacted from errors. */
  private async putCredentials(
    datastoreId: string,
    credentials: DatastoreCredentialsUnion,
    secret: string,
  ): Promise<void> {
    const ref = datastoreRef(datastoreId);
    const existing = await this.getRaw(datastoreId);
    const current = existing.properties.credentials?.credentialsType ?? "unknown";
    if (current !== credentials.credentialsType) {
      // Writing other credentials would silently change how the datastore authenticates.
      throw new KeyturnError(
        `datastore ${datastoreId} uses ${current} credentials, not ${credentials.credentialsType}: keyturn re-registers a datastore only with credentials of the type it has`,
      );
    }
    const properties = { ...existing.properties, credentials };
    await azureCall(
      OPERATIONS.putDatastore,
      datastoreId,
      () =>
        this.client(ref.subscriptionId).datastores.createOrUpdate(
          ref.resourceGroup,
          ref.workspaceName,
          ref.name,
          { properties },
          // Azure checks the key against the account before saving: a dead key never reaches a datastore.
          { skipValidation: false },
        ),
      [secret],
    );
  }

  private async listSecrets(datastoreId: string) {
    const ref = datastoreRef(datastoreId);
    return azureCall(OPERATIONS.listDatastoreSecrets, datastoreId, () =>
      this.client(ref.subscriptionId).datastores.listSecrets(ref.resourceGroup, ref.workspaceName, ref.name),
    );
  }

  private async getRaw(datastoreId: string): Promise<Datastore> {
    const ref = datastoreRef(datastoreId);
    return azureCall(OPERATIONS.getDatastore, datastoreId, () =>
      this.client(ref.subscriptionId).datastores.get(ref.resourceGroup, ref.workspaceName, ref.name),
    );
  }
}

function datastoreInfo(ds: Datastore, workspaceId: string): DatastoreInfo {
  // The union's members each name their container field differently; read them as plain fields.
  const p = ds.properties as DatastorePropertiesUnion & {
    accountName?: string;
    containerName?: string;
    filesystem?: string;
    fileShareName?: string;
    endpoint?: string;
  };
  const name = ds.name ?? "";
  const info: DatastoreInfo = {
    id: ds.id ?? `${workspaceId}/datastores/${name}`,
    name,
    workspaceId,
    datastoreType: p.datastoreType,
    credentialsType: p.credentials?.credentialsType ?? "Unknown",
    isDefault: p.isDefault === true,
  };
  if (p.accountName) info.accountName = p.accountName;
  const container = p.containerName ?? p.filesystem ?? p.fileShareName;
  if (container) info.container = container;
  if (p.endpoint) info.endpoint = p.endpoint;
  const modified = ds.systemData?.lastModifiedAt;
  if (modified) info.modifiedAt = modified instanceof Date ? modified.toISOString() : String(modified);
  return info;
}
