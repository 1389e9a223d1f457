import { randomBytes, randomUUID } from "node:crypto";
import type { AddressInfo, Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BlobServiceClient, RestError, StorageSharedKeyCredential } from "@azure/storage-blob";

/**
 * The storage data plane of the emulator: Azurite (3.35) run in-process, holding each
 * storage account's two keys so that a key keyturn has regenerated really stops working.
 *
 * Services: Blob always; Table and Queue on request. Azurite has no Azure Files service,
 * so `AzureFile` datastores have no data plane here (ARM still models them). ADLS Gen2
 * (hierarchical-namespace) accounts are served through their blob endpoint: Azurite has no
 * dfs endpoint either, and key checks are the same on both.
 *
 * One DataPlane per process: Azurite reads its accounts from the process-wide
 * `AZURITE_ACCOUNTS` environment variable (and re-reads it every 60 s on its own), so two
 * instances would overwrite each other's accounts. Starting a second one while one runs
 * throws. The variable is left set after stop(); nothing is restored.
 */

export interface DataPlaneAccount {
  name: string;
  key1: string;
  key2: string;
}

export interface DataPlaneOptions {
  accounts: DataPlaneAccount[];
  /** Interface to listen on; default 127.0.0.1. */
  host?: string;
  /** Default 0 (an ephemeral port). */
  blobPort?: number;
  tables?: boolean;
  /** Default 0 (an ephemeral port); only with `tables`. */
  tablePort?: number;
  queues?: boolean;
  /** Default 0 (an ephemeral port); only with `queues`. */
  queuePort?: number;
}

export type ProbeResult = { ok: true } | { ok: false; status: number; code?: string };

export interface DataPlane {
  /** e.g. http://127.0.0.1:PORT/<account>/ (path-style, trailing slash), as reported in primaryEndpoints.blob */
  blobEndpoint(accountName: string): string;
  tableEndpoint(accountName: string): string | undefined;
  queueEndpoint(accountName: string): string | undefined;
  /** Replace the accounts and their keys; effective for the very next request (a regenerated key must get 403 at once). Serialize concurrent calls. */
  setAccounts(accounts: DataPlaneAccount[]): Promise<void>;
  /** Create the container if missing, authenticating with the account's current key1. */
  ensureContainer(accountName: string, containerName: string): Promise<void>;
  /** Data-plane probe: with the given key, get properties of the container; returns ok or the HTTP status. Never throws for 4xx; never includes the key in any message. */
  probe(accountName: string, key: string, containerName: string): Promise<ProbeResult>;
  stop(): Promise<void>;
}

// Azurite ships no type declarations and its package entry point is the VS Code
// extension, so the server classes are deep-imported and described here by the few
// members this module uses.
interface AzuriteAccountDataStore {
  refresh(): void;
}
interface AzuriteServer {
  readonly accountDataStore: AzuriteAccountDataStore;
  readonly httpServer: Server;
  start(): Promise<void>;
  close(): Promise<void>;
}
type AzuriteServerClass = new (configuration: unknown) => AzuriteServer;
type AzuriteConfigurationClass = new (...args: unknown[]) => unknown;
interface AzuriteModule<T> {
  default: T;
}
interface AzuriteLoggerModule {
  configLogger(enable: boolean, logFile?: string): void;
}
interface AzuriteMemoryStoreModule {
  MemoryExtentChunkStore: new (sizeLimit?: number) => unknown;
}

/* eslint-disable @typescript-eslint/no-require-imports -- Azurite is untyped; see above */
function loadAzurite() {
  return {
    BlobServer: (require("azurite/dist/src/blob/BlobServer") as AzuriteModule<AzuriteServerClass>).default,
    BlobConfiguration: (
      require("azurite/dist/src/blob/BlobConfiguration") as AzuriteModule<AzuriteConfigurationClass>
    ).default,
    TableServer: (require("azurite/dist/src/table/TableServer") as AzuriteModule<AzuriteServerClass>).default,
    TableConfiguration: (
      require("azurite/dist/src/table/TableConfiguration") as AzuriteModule<AzuriteConfigurationClass>
    ).default,
    QueueServer: (require("azurite/dist/src/queue/QueueServer") as AzuriteModule<AzuriteServerClass>).default,
    QueueConfiguration: (
      require("azurite/dist/src/queue/QueueConfiguration") as AzuriteModule<AzuriteConfigurationClass>
    ).default,
    Logger: require("azurite/dist/src/common/Logger") as AzuriteLoggerModule,
    MemoryStore: require("azurite/dist/src/common/persistence/MemoryExtentStore") as AzuriteMemoryStoreModule,
  };
}
/* eslint-enable @typescript-eslint/no-require-imports */

const AZURITE_ACCOUNTS_ENV = "AZURITE_ACCOUNTS";
// Azure's own rule for storage account names. It also keeps ':' and ';' (the separators
// of AZURITE_ACCOUNTS) out, and keeps Azurite reading the account from the URL path.
const ACCOUNT_NAME = /^[a-z0-9]{3,24}$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

let running: DataPlaneImpl | undefined;

export async function startDataPlane(options: DataPlaneOptions): Promise<DataPlane> {
  if (running !== undefined) {
    throw new Error(
      "A storage data plane is already running in this process; Azurite takes its accounts from the " +
        "process-wide AZURITE_ACCOUNTS variable, so only one can run at a time. Stop it first.",
    );
  }
  const accounts = validateAccounts(options.accounts);
  const plane = new DataPlaneImpl(options, accounts);
  // Claimed before the first await so that two concurrent starts cannot both pass the check.
  running = plane;
  try {
    await plane.start();
  } catch (err) {
    running = undefined;
    throw err;
  }
  return plane;
}

interface Service {
  server: AzuriteServer;
  port: number;
}

class DataPlaneImpl implements DataPlane {
  private readonly host: string;
  private readonly endpointHost: string;
  private accounts: Map<string, DataPlaneAccount>;
  private blob: Service | undefined;
  private table: Service | undefined;
  private queue: Service | undefined;
  /** Tail of the setAccounts chain; ensureContainer waits on it so it never uses a key being replaced. */
  private pending: Promise<void> = Promise.resolve();
  private stopping: Promise<void> | undefined;

  constructor(
    private readonly options: DataPlaneOptions,
    accounts: Map<string, DataPlaneAccount>,
  ) {
    this.host = options.host ?? "127.0.0.1";
    this.endpointHost = endpointHostFor(this.host);
    this.accounts = accounts;
  }

  async start(): Promise<void> {
    const azurite = loadAzurite();
    // Azurite's debug logger is a process-wide singleton that logs request headers; make
    // sure nobody has switched it on in this process.
    azurite.Logger.configLogger(false);
    process.env[AZURITE_ACCOUNTS_ENV] = toAzuriteAccounts(this.accounts);

    // Loki keeps memory-persisted databases under these names but still stat()s them at
    // start and loads any file found there, so use names that cannot exist.
    const dbPath = (service: string) => join(tmpdir(), `keyturn-azurite-${randomUUID()}-${service}.json`);
    // A private chunk store: the default is shared by every Azurite server in the process
    // and capped at half the machine's memory.
    const chunks = () => new azurite.MemoryStore.MemoryExtentChunkStore();
    const enableAccessLog = false;
    const enableDebugLog = false;
    // Loose mode ignores headers Azurite does not know (the SDK is newer than Azurite).
    const loose = true;
    // storage-blob 12.32 sends an x-ms-version newer than any Azurite 3.35 accepts.
    const skipApiVersionCheck = true;
    const noCert = "";
    const isMemoryPersistence = true;

    try {
      this.blob = await startService(
        azurite.BlobServer,
        // prettier-ignore
        new azurite.BlobConfiguration(
          this.host, this.options.blobPort ?? 0, undefined, dbPath("blob"), dbPath("blob-extents"), [],
          enableAccessLog, undefined, enableDebugLog, undefined, loose, skipApiVersionCheck,
          noCert, noCert, noCert, undefined, false, isMemoryPersistence, chunks(),
        ),
      );
      if (this.options.tables === true) {
        this.table = await startService(
          azurite.TableServer,
          // TableConfiguration takes its arguments in a different order from the others.
          // prettier-ignore
          new azurite.TableConfiguration(
            this.host, this.options.tablePort ?? 0, undefined, dbPath("table"), enableDebugLog,
            enableAccessLog, undefined, undefined, loose, skipApiVersionCheck,
            noCert, noCert, noCert, undefined, false, isMemoryPersistence,
          ),
        );
      }
      if (this.options.queues === true) {
        this.queue = await startService(
          azurite.QueueServer,
          // prettier-ignore
          new azurite.QueueConfiguration(
            this.host, this.options.queuePort ?? 0, undefined, dbPath("queue"), dbPath("queue-extents"), [],
            enableAccessLog, undefined, enableDebugLog, undefined, loose, skipApiVersionCheck,
            noCert, noCert, noCert, undefined, false, isMemoryPersistence, chunks(),
          ),
        );
      }
    } catch (err) {
      await this.closeServices();
      throw err;
    }
  }

  blobEndpoint(accountName: string): string {
    return this.endpoint(this.requireBlob().port, accountName);
  }

  tableEndpoint(accountName: string): string | undefined {
    return this.table === undefined ? undefined : this.endpoint(this.table.port, accountName);
  }

  queueEndpoint(accountName: string): string | undefined {
    return this.queue === undefined ? undefined : this.endpoint(this.queue.port, accountName);
  }

  setAccounts(accounts: DataPlaneAccount[]): Promise<void> {
    const apply = async (): Promise<void> => {
      // Validated inside the chain, against the call's own arguments, so that a bad call
      // fails alone and leaves the previous accounts in force.
      const next = validateAccounts(accounts);
      if (this.stopping !== undefined) throw new Error("The storage data plane has been stopped.");
      process.env[AZURITE_ACCOUNTS_ENV] = toAzuriteAccounts(next);
      // Each Azurite server holds its own copy of the accounts; refresh() re-reads the
      // variable synchronously, so the next request on any of them sees the new keys.
      for (const service of [this.blob, this.table, this.queue]) service?.server.accountDataStore.refresh();
      this.accounts = next;
    };
    const result = this.pending.then(apply);
    this.pending = result.catch(() => undefined);
    return result;
  }

  async ensureContainer(accountName: string, containerName: string): Promise<void> {
    await this.pending;
    const account = this.accounts.get(accountName);
    if (account === undefined) {
      throw new Error(`Storage account '${accountName}' is not served by the data plane.`);
    }
    const container = this.client(accountName, account.key1).getContainerClient(containerName);
    try {
      await container.createIfNotExists();
    } catch (err) {
      throw new Error(
        `Could not create container '${containerName}' in storage account '${accountName}': ${describe(err)}`,
      );
    }
  }

  async probe(accountName: string, key: string, containerName: string): Promise<ProbeResult> {
    const container = this.client(accountName, key, { maxTries: 1 }).getContainerClient(containerName);
    try {
      await container.getProperties();
      return { ok: true };
    } catch (err) {
      if (err instanceof RestError && err.statusCode !== undefined) {
        const code = errorCode(err);
        return code === undefined
          ? { ok: false, status: err.statusCode }
          : { ok: false, status: err.statusCode, code };
      }
      // No HTTP answer at all. The original error is not passed on: its request carries the
      // Authorization header, which is derived from the key.
      throw new Error(
        `Data-plane probe of storage account '${accountName}' got no response: ${describe(err)}`,
      );
    }
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await this.pending;
      await this.closeServices();
      if (running === this) running = undefined;
    })();
    return this.stopping;
  }

  private async closeServices(): Promise<void> {
    const services = [this.queue, this.table, this.blob].filter((s): s is Service => s !== undefined);
    this.blob = this.table = this.queue = undefined;
    const results = await Promise.allSettled(services.map((s) => closeService(s.server)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed !== undefined) throw failed.reason;
  }

  private requireBlob(): Service {
    if (this.blob === undefined) throw new Error("The storage data plane is not running.");
    return this.blob;
  }

  private endpoint(port: number, accountName: string): string {
    return `http://${this.endpointHost}:${port}/${accountName}/`;
  }

  private client(accountName: string, key: string, retryOptions?: { maxTries: number }): BlobServiceClient {
    const credential = new StorageSharedKeyCredential(accountName, key);
    return new BlobServiceClient(
      this.blobEndpoint(accountName),
      credential,
      retryOptions ? { retryOptions } : {},
    );
  }
}

async function startService(Server: AzuriteServerClass, configuration: unknown): Promise<Service> {
  const server = new Server(configuration);
  await server.start();
  // Azurite listens on the port it was given, so with port 0 only the socket knows.
  const address = server.httpServer.address() as AddressInfo | null;
  if (address === null || typeof address === "string") {
    await closeService(server);
    throw new Error("Azurite started without a TCP address.");
  }
  return { server, port: address.port };
}

async function closeService(server: AzuriteServer): Promise<void> {
  // Azurite's close() asks the socket to stop but does not wait for it; the port is free
  // only once the server emits 'close' (after idle keep-alive connections are cut).
  const closed = new Promise<void>((resolve) => server.httpServer.once("close", () => resolve()));
  await server.close();
  await closed;
}

function validateAccounts(accounts: DataPlaneAccount[]): Map<string, DataPlaneAccount> {
  const byName = new Map<string, DataPlaneAccount>();
  for (const account of accounts) {
    if (!ACCOUNT_NAME.test(account.name)) {
      throw new Error(`Invalid storage account name '${account.name}': 3-24 lowercase letters and digits.`);
    }
    if (byName.has(account.name)) throw new Error(`Storage account '${account.name}' is listed twice.`);
    for (const keyName of ["key1", "key2"] as const) {
      // The key itself never goes into the message.
      if (!BASE64.test(account[keyName])) {
        throw new Error(`Storage account '${account.name}' has a ${keyName} that is not base64.`);
      }
    }
    byName.set(account.name, { name: account.name, key1: account.key1, key2: account.key2 });
  }
  return byName;
}

function toAzuriteAccounts(accounts: Map<string, DataPlaneAccount>): string {
  if (accounts.size === 0) {
    // An empty or missing variable makes Azurite fall back to devstoreaccount1 and its
    // published key. An account nobody knows the key of keeps the data plane closed.
    return `keyturnnoaccounts:${randomBytes(64).toString("base64")}`;
  }
  return [...accounts.values()].map((a) => `${a.name}:${a.key1}:${a.key2}`).join(";");
}

function endpointHostFor(host: string): string {
  if (host === "0.0.0.0" || host === "") return "127.0.0.1";
  if (host === "::") return "[::1]";
  return host.includes(":") ? `[${host}]` : host;
}

function errorCode(err: RestError): string | undefined {
  if (err.code !== undefined && err.code !== "") return err.code;
  return err.response?.headers.get("x-ms-error-code") ?? undefined;
}

/** A message safe to surface: the HTTP status and error code, or the error's code/message, never its request. */
function describe(err: unknown): string {
  if (err instanceof RestError) {
    return [err.statusCode, errorCode(err)].filter((part) => part !== undefined).join(" ") || err.name;
  }
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code ?? err.message;
  }
  return "unknown error";
}
