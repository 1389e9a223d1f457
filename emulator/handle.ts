/**
 * The running emulator as its callers hold it (what `startEmulator` returns), apart from index.ts so
 * that modules index.ts wires up (admin routes) can name it without importing index.ts back.
 */
import type { RegistryLogEntry } from "./arm/registry";
import type { BatchLogEntry } from "./batchdata";
import type { ConsumerJobs, OutageLog } from "./consumers";
import type { EmulatorContext } from "./context";
import type { Faults } from "./faults";
import type { Principal } from "./identity";
import type { RoleDefinition } from "./rbac";
import type { ArmThrottle, StorageRpThrottle, ThrottleCounts, ThrottleSource } from "./throttle";

/** What the CLI writes with --connection-file and what clients need to reach the emulator. */
export interface ConnectionInfo {
  armEndpoint: string;
  authorityHost: string;
  tenantId: string;
  clientId: string;
  clientSecret: string;
  subscriptionIds: string[];
  caCertFile: string;
  adminEndpoint: string;
  /** Service Management (classic storage accounts' keys): its own listener, like management.core.windows.net. */
  serviceManagementEndpoint: string;
  vaults: Record<string, string>;
}

export interface Emulator {
  connection: ConnectionInfo;
  caCert: string;
  ctx: EmulatorContext;
  outages: OutageLog;
  jobs: ConsumerJobs;
  faults: Faults;
  /** ARM's token buckets (setting `throttling`). */
  throttle: ArmThrottle;
  /** The Storage resource provider's limits (setting `storageRpLimits`). */
  storageRpThrottle: StorageRpThrottle;
  /** Every ARM call, oldest first; the oldest are dropped past MAX_REQUEST_LOG. */
  requestLog: RequestLogEntry[];
  /** Every 429 ARM answered since start (or the last reset), kept apart from the log so none is lost to trimming. */
  throttled: ThrottleCounts;
  /** Every Key Vault data-plane call, with the data action it needed. */
  vaultLog: RequestLogEntry[];
  /** Every container registry data-plane call (`/v2/`), with its answer; never the credentials. */
  registryLog: RegistryLogEntry[];
  /** Every Batch data-plane call, with its answer; never the signature. */
  batchLog: BatchLogEntry[];
  /** Adds a principal with the given role at the given scope (default: every subscription). */
  addPrincipal(displayName: string, role: RoleDefinition, scope?: string): Principal;
  stop(): Promise<void>;
}

export interface RequestLogEntry {
  /** When the request arrived (ISO, with milliseconds): the moment it drew on the limits. */
  at: string;
  method: string;
  path: string;
  operation: string;
  status: number;
  /** From arrival to the answer, latency model included. */
  durationMs?: number;
  clientId?: string;
  /** The RBAC action the call needed: ARM actions here, Key Vault data actions in vaultLog. */
  action?: string;
  /** On a 429: which limit refused the call (`fault`: an injected status). */
  throttledBy?: ThrottleSource;
}
