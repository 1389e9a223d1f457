import type { Request, Response } from "./http";

/**
 * What sign-in libraries and the Azure CLI read before they sign in: MSAL's instance discovery and
 * ARM's cloud metadata (`az cloud register --endpoint-resource-manager` reads the latter).
 */
export function instanceDiscovery(req: Request, origin: string): Response {
  const authority = req.query.get("authorization_endpoint") ?? "";
  const tenant = /\/([^/]+)\/oauth2/.exec(authority)?.[1] ?? "common";
  const host = new URL(origin).host;
  return {
    status: 200,
    body: {
      tenant_discovery_endpoint: `${origin}/${tenant}/v2.0/.well-known/openid-configuration`,
      "api-version": "1.1",
      metadata: [{ preferred_network: host, preferred_cache: host, aliases: [host] }],
    },
  };
}

/** ARM's cloud metadata, which `az cloud register --endpoint-resource-manager` reads. */
export function cloudMetadata(origin: string): Response {
  const entry = {
    portal: origin,
    authentication: {
      loginEndpoint: `${origin}/`,
      audiences: ["https://management.core.windows.net/", "https://management.azure.com/"],
      tenant: "common",
      identityProvider: "AAD",
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
    gallery: origin,
  };
  return { status: 200, body: [entry] };
}
