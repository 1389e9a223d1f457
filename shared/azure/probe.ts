import {
  BlobServiceClient,
  ContainerClient,
  StorageSharedKeyCredential,
  type StoragePipelineOptions,
} from "@azure/storage-blob";
import { armTimeoutMs } from "./pacing";
import { withRetry, type RetryOptions } from "./retry";

interface ProbeLocation {
  /** The endpoint the account reports (`primaryEndpoints.blob`); never a URL built from the name. */
  blobEndpoint?: string;
  accountName: string;
  /** A container or ADLS Gen2 filesystem; the blob service itself when absent. */
  container?: string;
  /** Set for file-share (AzureFile) datastores, which no probe here can reach. */
  fileShare?: string;
  /** A Batch account's data plane (`accountEndpoint`): the key is a Batch shared key, proved there. */
  batchEndpoint?: string;
  /** A container registry's `loginServer`: the key is an admin password, proved with `GET /v2/`. */
  registryLoginServer?: string;
}

/**
 * With an account key, or with a SAS token: a SAS probe lists one blob of the container, and a SAS whose
 * signature Azure accepts but whose permissions do not cover the listing (a 403 `Authorization…Mismatch`)
 * still proves the key that signed it works.
 */
export type ProbeTarget = ProbeLocation & ({ key: string; sas?: never } | { sas: string; key?: never });

/** Azure's 403 codes for a SAS it authenticated but that does not grant the request. */
const SAS_ACCEPTED_CODES = new Set([
  "AuthorizationPermissionMismatch",
  "AuthorizationResourceTypeMismatch",
  "AuthorizationServiceMismatch",
]);

export type ProbeOutcome =
  | { ok: true }
  /** `status` 0: no HTTP answer; `code` is Azure's error code (a dead key: 403) or the network error's. */
  | { ok: false; status: number; code?: string }
  | { ok: "skipped"; reason: string };

/** Proves a key works on the data plane by using it (DESIGN §2 step 5). */
export interface DataPlaneProbe {
  probe(target: ProbeTarget): Promise<ProbeOutcome>;
}

export interface ProbeOptions {
  /** Retries of network failures and 5xx only: a 403 is the answer, not a fault. */
  retry?: Partial<RetryOptions>;
}

const DEFAULT_RETRY: Omit<RetryOptions, "isRetryable"> = { retries: 2, delays: [500, 2_000] };

class ProbeFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string | undefined,
  ) {
    super(`probe failed with ${status}`);
  }
}

/**
 * The probes of key holders that are not storage accounts: a Batch data-plane call signed with a shared
 * key (`BatchSharedKeys.probeSharedKey`), a registry's `/v2/` with its admin user (`probeRegistry`).
 */
export interface OtherProbes {
  batch?: (accountEndpoint: string, accountName: string, key: string) => Promise<ProbeOutcome>;
  registry?: (loginServer: string, registryName: string, password: string) => Promise<ProbeOutcome>;
}

export class BlobDataPlaneProbe implements DataPlaneProbe {
  constructor(
    private readonly options: ProbeOptions = {},
    private readonly others: OtherProbes = {},
  ) {}

  async probe(target: ProbeTarget): Promise<ProbeOutcome> {
    if (target.batchEndpoint !== undefined && target.key !== undefined) {
      if (!this.others.batch) return { ok: "skipped", reason: "no Batch data-plane probe is configured" };
      return this.others.batch(target.batchEndpoint, target.accountName, target.key);
    }
    if (target.registryLoginServer !== undefined && target.key !== undefined) {
      if (!this.others.registry) return { ok: "skipped", reason: "no registry probe is configured" };
      return this.others.registry(target.registryLoginServer, target.accountName, target.key);
    }
    if (target.fileShare !== undefined) {
      return {
        ok: "skipped",
        reason: `file share '${target.fileShare}': keyturn has no file-share probe (and the emulator's data plane has no Files service); the stored key's fingerprint is the check`,
      };
    }
    if (!target.blobEndpoint) {
      return { ok: "skipped", reason: `storage account '${target.accountName}' reports no blob endpoint` };
    }
    const endpoint = target.blobEndpoint;
    // One try per attempt: the SDK would retry a 403 never, but a 5xx several times with long waits.
    // Each try has the ARM calls' deadline: a data plane that never answers is a failed probe.
    const clientOptions = { retryOptions: { maxTries: 1, tryTimeoutInMs: armTimeoutMs() } };
    const request =
      target.sas !== undefined
        ? sasRequest(endpoint, target.container ?? "", target.sas, clientOptions)
        : keyRequest(
            new BlobServiceClient(
              endpoint,
              new StorageSharedKeyCredential(target.accountName, target.key),
              clientOptions,
            ),
            target.container,
          );
    const retry: RetryOptions = {
      ...DEFAULT_RETRY,
      ...this.options.retry,
      isRetryable: (e) => e instanceof ProbeFailure && (e.status === 0 || e.status >= 500),
    };
    try {
      await withRetry(async () => {
        try {
          await request();
        } catch (e) {
          // Only the status and Azure's code are kept: the SDK error holds the signed request.
          const err = e as { statusCode?: unknown; code?: unknown };
          throw new ProbeFailure(
            typeof err.statusCode === "number" ? err.statusCode : 0,
            typeof err.code === "string" ? err.code : undefined,
          );
        }
      }, retry);
      return { ok: true };
    } catch (e) {
      if (!(e instanceof ProbeFailure)) throw e;
      if (
        target.sas !== undefined &&
        e.status === 403 &&
        e.code !== undefined &&
        SAS_ACCEPTED_CODES.has(e.code)
      )
        return { ok: true };
      return e.code === undefined
        ? { ok: false, status: e.status }
        : { ok: false, status: e.status, code: e.code };
    }
  }
}

function keyRequest(service: BlobServiceClient, container: string | undefined): () => Promise<unknown> {
  return container !== undefined
    ? () => service.getContainerClient(container).getProperties()
    : () => service.getProperties();
}

function sasRequest(
  endpoint: string,
  container: string,
  sas: string,
  options: StoragePipelineOptions,
): () => Promise<unknown> {
  const url = `${endpoint.replace(/\/?$/, "/")}${encodeURIComponent(container)}?${sas.replace(/^\?/, "")}`;
  const client = new ContainerClient(url, undefined, options);
  return () => client.listBlobsFlat().byPage({ maxPageSize: 1 }).next();
}
