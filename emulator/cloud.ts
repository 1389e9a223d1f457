import type { Request, Response } from "./http";

/**
 * What sign-in libraries and the Azure CLI read before they sign in: MSAL's instance discovery and
 * ARM's cloud metadata (`az cloud register --endpoint-resource-manager` reads the latter).
 *
 * The emulator's authority for the Azure CLI is the ADFS-style `<origin>/adfs`: MSAL Python (the
 * CLI's sign-in library) validates any other unknown authority against
 * `login.microsoftonline.com/common/discovery/instance`, which refuses a loopback host, and the CLI
 * (2.45) offers no switch to skip that. An authority ending in `/adfs` is trusted as given: MSAL reads
 * `<origin>/adfs/.well-known/openid-configuration` and posts to its `token_endpoint`.
 */

/** The AAD audiences ARM accepts; the first is what the Azure CLI asks tokens for. */
const ARM_AUDIENCES = ["https://management.core.windows.net/", "https://management.azure.com/"];

/** Entra's instance discovery: known for the emulator's own host, `invalid_instance` for any other. */
export function instanceDiscovery(req: Request, origin: string): Response {
  const authority = req.query.get("authorization_endpoint") ?? "";
  const { host, hostname } = new URL(origin);
  let asked: URL | undefined;
  try {
    asked = new URL(authority);
  } catch {
    asked = undefined;
  }
  // MSAL sends the authority's host without its port (`https://127.0.0.1/{tenant}/oauth2/v2.0/authorize`);
  // the certificate's names (`localhost`, `127.0.0.1`) are both the emulator.
  const known = new Set([hostname.toLowerCase(), "localhost", "127.0.0.1"]);
  if (!asked || !known.has(asked.hostname.toLowerCase())) {
    return {
      status: 400,
      body: {
        error: "invalid_instance",
        error_description: `AADSTS50049: Unknown or invalid instance '${asked?.host ?? authority}'.`,
        error_codes: [50049],
        timestamp: new Date().toISOString(),
      },
    };
  }
  const tenant = /^\/([^/]+)\//.exec(asked.pathname)?.[1] ?? "common";
  return {
    status: 200,
    body: {
      tenant_discovery_endpoint: `${origin}/${tenant}/v2.0/.well-known/openid-configuration`,
      "api-version": "1.1",
      metadata: [{ preferred_network: host, preferred_cache: host, aliases: [...new Set([host, hostname])] }],
    },
  };
}

/**
 * ARM's `/metadata/endpoints`, in the shape each api-version has on management.azure.com:
 * - `2015-01-01` (what `az cloud register --endpoint-resource-manager` and Azure PowerShell's
 *   `Add-AzEnvironment -ARMEndpoint` send, through msrestazure): one object
 *   `{galleryEndpoint, graphEndpoint, portalEndpoint, authentication: {loginEndpoint, audiences}}`;
 * - `2018-01-01` … `2020-06-01` (what `ARM_CLOUD_METADATA_URL` points at): an array of clouds;
 * - `2022-09-01` and later: the current cloud as one object in that newer shape.
 * Without a request (or an api-version), the 2015-01-01 shape: the one the Azure CLI reads.
 */
export function cloudMetadata(origin: string, req?: Request): Response {
  const apiVersion = req?.query.get("api-version") ?? "2015-01-01";
  const loginEndpoint = `${origin}/adfs/`;
  if (apiVersion < "2018-01-01") {
    return {
      status: 200,
      body: {
        galleryEndpoint: `${origin}/`,
        graphEndpoint: "https://graph.windows.net/",
        portalEndpoint: `${origin}/`,
        authentication: { loginEndpoint, audiences: ARM_AUDIENCES },
      },
    };
  }
  const entry = {
    portal: origin,
    authentication: {
      loginEndpoint,
      audiences: ARM_AUDIENCES,
      tenant: "adfs",
      identityProvider: "ADFS",
    },
    media: origin,
    graphAudience: "https://graph.windows.net/",
    graph: "https://graph.windows.net/",
    name: "KeyturnEmulator",
    suffixes: {
      azureDataLakeStoreFileSystem: "azuredatalakestore.net",
      acrLoginServer: "azurecr.io",
      sqlServerHostname: "database.windows.net",
      keyVaultDns: "vault.azure.net",
      storage: "core.windows.net",
    },
    batch: "https://batch.core.windows.net/",
    resourceManager: `${origin}/`,
    vmImageAliasDoc: `${origin}/aliases.json`,
    activeDirectoryDataLake: "https://datalake.azure.net/",
    sqlManagement: "https://management.core.windows.net:8443/",
    gallery: `${origin}/`,
  };
  return { status: 200, body: apiVersion >= "2022-09-01" ? entry : [entry] };
}
