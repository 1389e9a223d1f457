import { randomBytes } from "node:crypto";
import {
  batchAccountId,
  classicStorageAccountId,
  keyVaultId,
  newRegistryPassword,
  newStorageKey,
  resourceKey,
  storageAccountId,
  workspaceId,
  type ContainerRegistry,
  type Datastore,
  type DatastoreCredentials,
  type DatastoreType,
  type Estate,
  type SasRecipe,
  type StorageAccount,
  type Workspace,
} from "./model";

export const EMULATOR_TENANT_ID = "72f988bf-0000-4000-8000-00000000e7e7";
export const DEMO_SUBSCRIPTION_ID = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b";
/** The demo estate's classic storage account (Microsoft.ClassicStorage). */
export const CLASSIC_DEMO_ACCOUNT = "stmllegacy";
const LOCATION = "westeurope";
/**
 * The two regions a multi-subscription large estate alternates within each subscription, so the
 * Storage RP's per-subscription-and-region limits are exercised as two budgets, not one.
 */
export const LARGE_ESTATE_REGIONS = ["eastus", "westeurope"] as const;
export const MAX_LARGE_SUBSCRIPTIONS = 50;

export type EstateSpec =
  | { kind: "demo" }
  | {
      kind: "large";
      accounts: number;
      datastores: number;
      /** Absent: today's one subscription in one region. Given (even 1): the two regions alternate. */
      subscriptions?: number;
    };

/** How the CLI's --estate help and the parse error name the forms. */
export const ESTATE_FORMS = "demo, or large:<accounts>x<datastoresPerAccount>[x<subscriptions>]";

/** An estate name as the CLI takes it: `demo` or `large:<accounts>x<datastoresPerAccount>[x<subscriptions>]`. */
export function parseEstateName(name: string): EstateSpec {
  if (name === "demo") return { kind: "demo" };
  const m = /^large:(\d+)x(\d+)(?:x(\d+))?$/.exec(name);
  if (m) {
    const accounts = Number(m[1]);
    const datastores = Number(m[2]);
    const subscriptions = m[3] === undefined ? undefined : Number(m[3]);
    if (
      accounts >= 1 &&
      accounts <= 5000 &&
      datastores >= 0 &&
      datastores <= 1000 &&
      (subscriptions === undefined || (subscriptions >= 1 && subscriptions <= MAX_LARGE_SUBSCRIPTIONS))
    ) {
      return subscriptions === undefined
        ? { kind: "large", accounts, datastores }
        : { kind: "large", accounts, datastores, subscriptions };
    }
  }
  throw new Error(
    `Unknown estate '${name}': use 'demo' or 'large:<accounts>x<datastoresPerAccount>[x<subscriptions>]' (1-5000 accounts, 0-1000 datastores each, 1-${MAX_LARGE_SUBSCRIPTIONS} subscriptions), e.g. large:50x10 or large:30x10x3.`,
  );
}

export function buildEstate(name: string, now: Date): Estate {
  const parsed = parseEstateName(name);
  return parsed.kind === "demo"
    ? demoEstate(now)
    : largeEstate(parsed.accounts, parsed.datastores, parsed.subscriptions, now);
}

/**
 * The subscription ids of a large estate: the first is the demo's (so `large:AxD` keeps its id),
 * the others are fixed too, so a bench run names the same subscriptions every time.
 */
export function largeSubscriptionId(index: number): string {
  return index === 0
    ? DEMO_SUBSCRIPTION_ID
    : `6f1c2a3b-4d5e-4f60-8a7b-${index.toString(16).padStart(12, "0")}`;
}

function emptyEstate(): Estate {
  return {
    tenantId: EMULATOR_TENANT_ID,
    subscriptions: new Map(),
    storageAccounts: new Map(),
    workspaces: new Map(),
    batchAccounts: new Map(),
    registries: new Map(),
    vaults: new Map(),
    keyVaultReaders: [],
  };
}

function addSubscription(
  estate: Estate,
  subscriptionId: string,
  displayName: string,
  groups: string[],
): void {
  estate.subscriptions.set(subscriptionId.toLowerCase(), {
    subscriptionId,
    displayName,
    resourceGroups: new Set(groups.map((g) => g.toLowerCase())),
  });
}

function addAccount(
  estate: Estate,
  sub: string,
  rg: string,
  name: string,
  keyAgeDays: number,
  now: Date,
  extra: Partial<StorageAccount> = {},
): StorageAccount {
  const created = new Date(now.getTime() - keyAgeDays * 86_400_000);
  const account: StorageAccount = {
    id: storageAccountId(sub, rg, name),
    subscriptionId: sub,
    resourceGroup: rg,
    name,
    location: extra.location ?? LOCATION,
    kind: "StorageV2",
    tags: {},
    isHnsEnabled: false,
    allowSharedKeyAccess: true,
    keys: {
      key1: { value: newStorageKey(), creationTime: created },
      key2: { value: newStorageKey(), creationTime: created },
    },
    ...extra,
  };
  estate.storageAccounts.set(resourceKey(account.id), account);
  return account;
}

function addWorkspace(
  estate: Estate,
  sub: string,
  rg: string,
  name: string,
  storage: StorageAccount,
): Workspace {
  const ws: Workspace = {
    id: workspaceId(sub, rg, name),
    subscriptionId: sub,
    resourceGroup: rg,
    name,
    // A workspace lives in its storage account's region (Azure requires it).
    location: storage.location,
    storageAccountId: storage.id,
    keyVaultId: keyVaultId(sub, rg, `kv-${name}`.slice(0, 24)),
    applicationInsightsId: `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.Insights/components/appi-${name}`,
    containerRegistryId: `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.ContainerRegistry/registries/cr${name.replace(/[^a-z0-9]/gi, "")}`,
    userStorageKey: storage.keys.key1.value,
    datastores: new Map(),
  };
  estate.workspaces.set(resourceKey(ws.id), ws);
  // Every workspace has its two default datastores on its own storage account.
  addDatastore(
    ws,
    "workspaceblobstore",
    "AzureBlob",
    storage,
    `azureml-blobstore-${shortId()}`,
    accountKey(storage),
    true,
  );
  addDatastore(
    ws,
    "workspacefilestore",
    "AzureFile",
    storage,
    `azureml-filestore-${shortId()}`,
    accountKey(storage),
  );
  return ws;
}

/** The workspace's container registry (named by its `containerRegistryId`), admin user on, the workspace holding `password`. */
function addRegistry(estate: Estate, ws: Workspace, now: Date): ContainerRegistry {
  const name = ws.containerRegistryId.slice(ws.containerRegistryId.lastIndexOf("/") + 1);
  const registry: ContainerRegistry = {
    id: ws.containerRegistryId,
    subscriptionId: ws.subscriptionId,
    resourceGroup: ws.resourceGroup,
    name,
    location: ws.location,
    adminUserEnabled: true,
    passwords: { password: newRegistryPassword(), password2: newRegistryPassword() },
    createdAt: now,
    loginServer: "",
  };
  estate.registries.set(resourceKey(registry.id), registry);
  ws.registryPassword = { name: "password", value: registry.passwords.password };
  return registry;
}

function accountKey(account: StorageAccount): DatastoreCredentials {
  return {
    credentialsType: "AccountKey",
    secrets: { secretsType: "AccountKey", key: account.keys.key1.value },
  };
}

function addDatastore(
  ws: Workspace,
  name: string,
  type: DatastoreType,
  account: StorageAccount,
  container: string,
  credentials: DatastoreCredentials,
  isDefault = false,
): Datastore {
  const now = new Date();
  const ds: Datastore = {
    id: `${ws.id}/datastores/${name}`,
    name,
    datastoreType: type,
    accountName: account.name,
    containerName: container,
    endpoint: "core.windows.net",
    protocol: "https",
    isDefault,
    tags: {},
    credentials,
    createdAt: now,
    lastModifiedAt: now,
  };
  ws.datastores.set(name.toLowerCase(), ds);
  return ds;
}

function shortId(): string {
  return randomBytes(4).toString("hex");
}

/**
 * The demo estate: three workspaces in two resource groups, six storage accounts (one shared by
 * two workspaces, one ADLS Gen2, one without shared-key access that only an identity-based datastore
 * uses, one classic), AccountKey datastores of every type, one SAS and two identity-based datastores, a Batch
 * account with auto-storage and shared keys, and a Key Vault that publishes a storage key and the
 * Batch account's primary key, each read by an app (a Key Vault reader).
 */
function demoEstate(now: Date): Estate {
  const estate = emptyEstate();
  const sub = DEMO_SUBSCRIPTION_ID;
  addSubscription(estate, sub, "ml-platform", ["rg-ml-prod", "rg-ml-research"]);

  const shared = addAccount(estate, sub, "rg-ml-prod", "stmlshared", 120, now, {
    keyExpirationPeriodInDays: 90,
  });
  const research = addAccount(estate, sub, "rg-ml-research", "stmlresearch", 45, now);
  // Its SAS policy allows 30 days: partner_drop's one-year SAS is a finding.
  const lake = addAccount(estate, sub, "rg-ml-research", "stmllake", 200, now, {
    isHnsEnabled: true,
    sasExpirationPeriod: "30.00:00:00",
  });
  const batch = addAccount(estate, sub, "rg-ml-prod", "stmlbatch", 60, now);
  // Entra ID only: its keys exist (ARM lists and regenerates them) but the data plane refuses them.
  const governed = addAccount(estate, sub, "rg-ml-research", "stmlgoverned", 150, now, {
    allowSharedKeyAccess: false,
  });

  const train = addWorkspace(estate, sub, "rg-ml-prod", "mlw-train", shared);
  const score = addWorkspace(estate, sub, "rg-ml-prod", "mlw-score", shared);
  const explore = addWorkspace(estate, sub, "rg-ml-research", "mlw-research", research);
  // mlw-train's container registry, admin user on, the workspace holding `password` (seed 003).
  addRegistry(estate, train, now);

  addDatastore(train, "curated_lake", "AzureDataLakeGen2", lake, "curated", accountKey(lake));
  addDatastore(explore, "raw_lake", "AzureDataLakeGen2", lake, "raw", accountKey(lake));
  addDatastore(score, "batch_outputs", "AzureBlob", batch, "outputs", accountKey(batch));
  addDatastore(explore, "shared_features", "AzureBlob", shared, "features", accountKey(shared));
  // The emulator signs SAS tokens when the data plane starts (emulator/sas.ts); until then "" stands in.
  const sas = (recipe: SasRecipe): DatastoreCredentials => ({
    credentialsType: "Sas",
    secrets: { secretsType: "Sas", sasToken: "" },
    recipe,
  });
  addDatastore(explore, "partner_drop", "AzureBlob", lake, "partner", sas("account"));
  addDatastore(score, "vendor_features", "AzureBlob", shared, "features", sas("container"));
  addDatastore(explore, "delegated_drop", "AzureBlob", lake, "partner", sas("userDelegation"));
  addDatastore(explore, "stale_drop", "AzureBlob", lake, "partner", sas("expired"));
  addDatastore(train, "identity_scratch", "AzureBlob", research, "scratch", { credentialsType: "None" });
  addDatastore(explore, "governed_features", "AzureBlob", governed, "features", { credentialsType: "None" });

  // A classic account an estate migrated late still has (Microsoft.ClassicStorage; keys in Service
  // Management, which records no creation times), behind one AccountKey datastore.
  const legacy = addAccount(estate, sub, "rg-ml-research", CLASSIC_DEMO_ACCOUNT, 400, now, {
    id: classicStorageAccountId(sub, "rg-ml-research", CLASSIC_DEMO_ACCOUNT),
    classic: true,
  });
  addDatastore(explore, "legacy_archive", "AzureBlob", legacy, "archive", accountKey(legacy));

  const batchId = batchAccountId(sub, "rg-ml-prod", "batchmltrain");
  const batchKeys = { primary: newStorageKey(), secondary: newStorageKey() };
  estate.batchAccounts.set(resourceKey(batchId), {
    id: batchId,
    subscriptionId: sub,
    resourceGroup: "rg-ml-prod",
    name: "batchmltrain",
    location: LOCATION,
    keys: batchKeys,
    allowedAuthenticationModes: ["SharedKey", "AAD", "TaskAuthenticationToken"],
    autoStorage: {
      storageAccountId: batch.id,
      authenticationMode: "StorageKeys",
      lastKeySync: new Date(now.getTime() - 60 * 86_400_000),
      heldKey: batch.keys.key1.value,
    },
  });

  const vaultId = keyVaultId(sub, "rg-ml-prod", "kv-keyturn-demo");
  estate.vaults.set(resourceKey(vaultId), {
    id: vaultId,
    subscriptionId: sub,
    resourceGroup: "rg-ml-prod",
    name: "kv-keyturn-demo",
    location: LOCATION,
    vaultUri: "",
    secrets: new Map([
      [
        "stmlbatch-key",
        [
          {
            version: randomBytes(16).toString("hex"),
            value: batch.keys.key1.value,
            tags: { "keyturn-storage-account": batch.id, "keyturn-key-name": "key1" },
            enabled: true,
            created: now,
            updated: now,
          },
        ],
      ],
      [
        // An app's copy of the Batch account's shared key (seed 004), kept current when batchKeys is on.
        "batchmltrain-key",
        [
          {
            version: randomBytes(16).toString("hex"),
            value: batchKeys.primary,
            tags: { "keyturn-batch-account": batchId, "keyturn-key-name": "key1" },
            enabled: true,
            created: now,
            updated: now,
          },
        ],
      ],
    ]),
  });
  estate.keyVaultReaders.push({
    name: "scoring-app",
    vaultName: "kv-keyturn-demo",
    secretName: "stmlbatch-key",
    storageAccountId: batch.id,
  });
  // An app that submits Batch jobs with the shared key it reads from batchmltrain-key.
  estate.keyVaultReaders.push({
    name: "batch-submitter",
    vaultName: "kv-keyturn-demo",
    secretName: "batchmltrain-key",
    batchAccountId: batchId,
  });
  return estate;
}

/**
 * Many accounts for scale work: one workspace per account, each subscription's accounts spread over
 * up to 25 resource groups. Accounts go round-robin over the subscriptions; with a subscription count
 * given, each subscription's accounts alternate two regions. Without one, it is one subscription in
 * one region, as before subscriptions could be given.
 */
function largeEstate(
  accounts: number,
  datastores: number,
  subscriptions: number | undefined,
  now: Date,
): Estate {
  const estate = emptyEstate();
  const subs = subscriptions ?? 1;
  const groupsOf: string[][] = [];
  for (let s = 0; s < subs; s++) {
    const inSubscription = Math.ceil((accounts - s) / subs);
    const groups = Array.from(
      { length: Math.max(1, Math.min(25, inSubscription)) },
      (_, i) => `rg-ml-${String(i).padStart(2, "0")}`,
    );
    groupsOf.push(groups);
    addSubscription(
      estate,
      largeSubscriptionId(s),
      s === 0 ? "ml-platform-large" : `ml-platform-large-${s + 1}`,
      groups,
    );
  }
  for (let i = 0; i < accounts; i++) {
    const s = i % subs;
    const j = Math.floor(i / subs); // the account's place within its subscription
    const sub = largeSubscriptionId(s);
    const groups = groupsOf[s]!;
    const rg = groups[j % groups.length]!;
    const location =
      subscriptions === undefined ? LOCATION : LARGE_ESTATE_REGIONS[j % LARGE_ESTATE_REGIONS.length]!;
    const account = addAccount(estate, sub, rg, `stml${String(i).padStart(5, "0")}`, 40 + (i % 60), now, {
      location,
    });
    const ws = addWorkspace(estate, sub, rg, `mlw-${String(i).padStart(5, "0")}`, account);
    for (let d = 0; d < datastores; d++) {
      addDatastore(
        ws,
        `ds_${String(d).padStart(4, "0")}`,
        "AzureBlob",
        account,
        `data${d}`,
        accountKey(account),
      );
    }
  }
  return estate;
}
