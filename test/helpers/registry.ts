import { join } from "node:path";
import { ContainerRegistryManagementClient } from "@azure/arm-containerregistry";
import type { Emulator } from "../../emulator";
import { KEYTURN_ROLE_FILE, projectRoot } from "../../emulator/paths";
import { loadRoleDefinition } from "../../emulator/rbac";
import { REGISTRY_ROLE_FILE } from "../../shared/azure/call";
import { clientOptions, type Clients } from "./emulator";

/** The demo estate's one container registry (mlw-train's), in rg-ml-prod. */
export const DEMO_REGISTRY = "crmlwtrain";

/** The actions of the registry role file (infra/keyturn-registry-role.json). */
export function registryRoleActions(): string[] {
  return loadRoleDefinition(join(projectRoot(), REGISTRY_ROLE_FILE)).Actions;
}

/** keyturn with --registry-passwords on: the main role's actions and the registry role's. */
export function keyturnWithRegistryActions(): string[] {
  return [...loadRoleDefinition(KEYTURN_ROLE_FILE).Actions, ...registryRoleActions()];
}

/** The real ACR management client, acting as `principal`, pointed at the emulator. */
export function registryClient(
  emulator: Emulator,
  principal: Clients,
  retries?: number,
): ContainerRegistryManagementClient {
  return new ContainerRegistryManagementClient(
    principal.credential,
    emulator.connection.subscriptionIds[0]!,
    {
      ...clientOptions(emulator.connection, emulator.caCert),
      // A modular client asks for `{endpoint}/.default` unless told ARM's scope.
      credentials: { scopes: ["https://management.azure.com/.default"] },
      ...(retries !== undefined ? { retryOptions: { maxRetries: retries } } : {}),
    },
  );
}

/** Both admin passwords as the SDK reads them. */
export async function registryPasswordValues(
  acr: ContainerRegistryManagementClient,
  resourceGroup: string,
  registry: string,
): Promise<{ password: string; password2: string }> {
  const result = await acr.registries.listCredentials(resourceGroup, registry);
  const value = (name: string): string => {
    const found = result.passwords?.find((p) => p.name === name)?.value;
    if (!found) throw new Error(`listCredentials returned no ${name} for ${registry}`);
    return found;
  };
  return { password: value("password"), password2: value("password2") };
}
