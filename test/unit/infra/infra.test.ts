import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { EVENT_CATALOGUE, METRIC_CATALOGUE, redactText } from "../../../shared/telemetry";
import { DEFAULT_ARM_TIMEOUT_SECONDS } from "../../../shared/azure/pacing";
import { OPERATIONS } from "../../../shared/azure/call";
import { problems, references } from "./kql";
import { withPlaceholdersReplaced } from "./queries";

/**
 * Cross-checks between infra/ and the code, runnable without Azure or the Bicep compiler: the
 * settings the code reads are deployed or have a default, nothing secret is in app settings, the
 * role file is well-formed, and the alerts and workbook query only telemetry the code emits.
 */

const ROOT = join(__dirname, "..", "..", "..");
const read = (path: string): string => readFileSync(join(ROOT, path), "utf8");
const json = <T>(path: string): T => JSON.parse(read(path)) as T;

interface Setting {
  name: string;
  set: "literal" | "deployment" | "no";
  value: string;
  deployment: string;
  default: string;
  description: string;
}
interface Alert {
  name: string;
  displayName: string;
  description: string;
  severity: number;
  evaluationFrequency: string;
  windowSize: string;
  autoMitigate: boolean;
  dimensions: string[];
  query: string;
}
interface WorkbookItem {
  type: number;
  name: string;
  content: { query?: string; title?: string; resourceType?: string };
}

const settings = json<{ settings: Setting[] }>("infra/app-settings.json").settings;
const byName = new Map(settings.map((s) => [s.name, s]));
const alerts = json<{ alerts: Alert[] }>("infra/alerts.json").alerts;
const workbook = json<{ version: string; items: WorkbookItem[] }>("infra/workbook.json");
const workbookQueries = workbook.items.filter((i) => i.type === 3);
const bicepFiles = [
  "infra/main.bicep",
  ...readdirSync(join(ROOT, "infra/modules")).map((f) => `infra/modules/${f}`),
];
const bicep = new Map(bicepFiles.map((f) => [f, read(f)]));
const mainBicep = read("infra/main.bicep");

function sourceFiles(dir: string): string[] {
  const abs = join(ROOT, dir);
  if (!existsSync(abs)) return [];
  return readdirSync(abs).flatMap((entry) => {
    const path = join(abs, entry);
    if (statSync(path).isDirectory()) return sourceFiles(relative(ROOT, path));
    return entry.endsWith(".ts") && !entry.endsWith(".d.ts") ? [relative(ROOT, path)] : [];
  });
}

/** App-setting families: keyturn's own, the Functions host's and the Azure SDKs'. */
const SETTING_NAME =
  /^(?:KEYTURN_[A-Z0-9_]+|APPLICATIONINSIGHTS_[A-Z0-9_]+|AZURE_[A-Z0-9_]+|AzureWebJobs\w*|FUNCTIONS_\w+)$/;

/** Every app setting the deployed code can read, with the files that read it. */
function settingsReadByCode(): Map<string, string[]> {
  const found = new Map<string, string[]>();
  const patterns = [
    /process\.env\.([A-Za-z_][A-Za-z0-9_]*)/g,
    /process\.env\[\s*["'`]([^"'`]+)["'`]\s*\]/g,
    /\benv\.([A-Za-z_][A-Za-z0-9_]*)/g,
    /\benv\[\s*["'`]([^"'`]+)["'`]\s*\]/g,
    // Names kept in constants (`SETTING.schedule = "KEYTURN_SCHEDULE"`) and read through them.
    /["'`]([A-Za-z_][A-Za-z0-9_]*)["'`]/g,
  ];
  // cli/api.ts configures the CLI as a client of a deployed keyturn (KEYTURN_API_KEY and the like,
  // in the README): nothing the app reads, so no app setting.
  const files = ["shared", "functions", "cli", "local"]
    .flatMap(sourceFiles)
    .filter((f) => f !== "cli/api.ts");
  for (const file of files) {
    const text = readFileSync(join(ROOT, file), "utf8");
    for (const pattern of patterns) {
      for (const match of text.matchAll(pattern)) {
        const name = match[1] ?? "";
        if (SETTING_NAME.test(name)) found.set(name, [...(found.get(name) ?? []), file]);
      }
    }
  }
  return found;
}

describe("app settings: infra/app-settings.json against the code", () => {
  it("is well-formed: one entry per name, each either set by infra or left unset with a default", () => {
    expect(new Set(settings.map((s) => s.name)).size).toBe(settings.length);
    for (const s of settings) {
      expect([s.name, Object.keys(s).sort()]).toEqual([
        s.name,
        ["default", "deployment", "description", "name", "set", "value"],
      ]);
      expect(["literal", "deployment", "no"]).toContain(s.set);
      expect([s.name, s.set === "literal" ? s.value.length > 0 : s.value === ""]).toEqual([s.name, true]);
      expect([s.name, s.set === "deployment" ? s.deployment.length > 0 : s.deployment === ""]).toEqual([
        s.name,
        true,
      ]);
      expect([s.name, s.default.length > 0 && s.description.length > 0]).toEqual([s.name, true]);
    }
  });

  it("lists every setting the code reads", () => {
    const read = settingsReadByCode();
    expect(read.size).toBeGreaterThan(5);
    const missing = [...read.keys()]
      .filter((name) => !byName.has(name))
      .map((n) => `${n} (${read.get(n)?.[0]})`);
    expect(missing).toEqual([]);
  });

  it("lists no KEYTURN_ setting that nothing reads", () => {
    const read = settingsReadByCode();
    const hostJson = read_host_settings();
    const stale = settings
      .map((s) => s.name)
      .filter((n) => n.startsWith("KEYTURN_") && !read.has(n) && !hostJson.includes(n));
    expect(stale).toEqual([]);
  });

  it("sets in Azure every setting host.json refers to", () => {
    for (const name of read_host_settings()) {
      expect([name, byName.get(name)?.set]).toEqual([name, expect.stringMatching(/^(literal|deployment)$/)]);
    }
  });

  it("keeps the documented defaults of keyturn's tunables equal to the deployed values", () => {
    for (const s of settings.filter(
      (s) => s.set === "literal" && s.name.startsWith("KEYTURN_") && s.name !== "KEYTURN_TASK_HUB",
    )) {
      expect([s.name, s.value]).toEqual([s.name, s.default]);
    }
  });

  it("main.bicep computes exactly the `deployment` settings", () => {
    const block = /var deploymentSettings = \{([\s\S]*?)\n\}/.exec(mainBicep)?.[1] ?? "";
    const keys = [...block.matchAll(/^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:/gm)].map((m) => m[1]);
    keys.push(...Object.keys(schedulerSettings()));
    expect(keys.sort()).toEqual(
      settings
        .filter((s) => s.set === "deployment")
        .map((s) => s.name)
        .sort(),
    );
    expect(mainBicep).toMatch(/filter\(settingsFile\.settings, s => s\.set == 'literal'\)/);
    expect(mainBicep).toMatch(
      /appSettings: union\(literalSettings, deploymentSettings, schedulerSettings, appSettingOverrides\)/,
    );
  });
});

/** The settings main.bicep adds when durableBackend is DurableTaskScheduler, by name, as Bicep source. */
function schedulerSettings(): Record<string, string> {
  const block =
    /var schedulerSettings = useScheduler\s*\?\s*\{([\s\S]*?)\n\s*\}\s*:\s*\{\}/.exec(mainBicep)?.[1] ?? "";
  return Object.fromEntries(
    [...block.matchAll(/^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.+)$/gm)].map((m) => [m[1] ?? "", m[2] ?? ""]),
  );
}

/** main.bicep's value of a `deployment` setting, as Bicep source. */
function deployedValue(name: string): string | undefined {
  const block = /var deploymentSettings = \{([\s\S]*?)\n\}/.exec(mainBicep)?.[1] ?? "";
  return new RegExp(`^\\s*${name}\\s*:\\s*(.+)$`, "m").exec(block)?.[1];
}

function read_host_settings(): string[] {
  return [...read("host.json").matchAll(/%([A-Za-z_][A-Za-z0-9_]*)%/g)].map((m) => m[1] ?? "");
}

describe("no secret in app settings or infra", () => {
  const SECRET_SHAPES =
    /AccountKey=|DefaultEndpointsProtocol=|InstrumentationKey=|SharedAccessSignature=|SharedAccessKey=|[?&]sig=|ClientSecret|Password=/i;

  it("no literal value looks like a key, a connection string or a SAS", () => {
    for (const s of settings.filter((s) => s.set === "literal")) {
      expect([s.name, SECRET_SHAPES.test(s.value)]).toEqual([s.name, false]);
      expect([s.name, redactText(s.value)]).toEqual([s.name, s.value]);
    }
  });

  it("no setting carries a storage connection string, a key or a secret", () => {
    for (const { name } of settings) {
      // The Functions host's own storage goes through the identity (AzureWebJobsStorage__*), never a connection string.
      expect(name).not.toBe("AzureWebJobsStorage");
      expect(name).not.toMatch(/^(WEBSITE_CONTENTAZUREFILECONNECTIONSTRING|APPINSIGHTS_INSTRUMENTATIONKEY)$/);
      // Names of connections, not holders of secrets: their values are checked below.
      const exempt = [
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "DURABLE_TASK_SCHEDULER_CONNECTION_STRING",
        "AzureFunctionsJobHost__extensions__durableTask__storageProvider__connectionStringName",
      ];
      if (!exempt.includes(name)) {
        expect(name).not.toMatch(/CONNECTION_?STRING|SECRET|PASSWORD|_KEY$|AccountKey/i);
      }
    }
    // The Durable Task Scheduler "connection string" names the endpoint and the managed identity: no secret.
    expect(schedulerSettings().DURABLE_TASK_SCHEDULER_CONNECTION_STRING).toBe(
      "'Endpoint=${scheduler!.outputs.endpoint};Authentication=ManagedIdentity;ClientID=${identity.outputs.clientId}'",
    );
    // The Application Insights connection string only names where to send: local auth is off.
    expect(bicep.get("infra/modules/monitoring.bicep")).toMatch(/DisableLocalAuth: true/);
    expect(byName.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING")?.deployment).toMatch(/Authorization=AAD/);
    expect(mainBicep).toMatch(
      /APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD;ClientId=\$\{identity\.outputs\.clientId\}'/,
    );
  });

  it("no Bicep file reads a key or writes one anywhere", () => {
    for (const [file, text] of bicep) {
      expect([file, text.match(/\blist[A-Za-z]*\(|\.list[A-Za-z]*\(/g)]).toEqual([file, null]);
      expect([file, SECRET_SHAPES.test(text)]).toEqual([file, false]);
      expect([file, /@secure\(\)/.test(text)]).toEqual([file, false]);
    }
  });

  it("storage takes identities only and the vault authorizes with RBAC", () => {
    expect(bicep.get("infra/modules/storage.bicep")).toMatch(/allowSharedKeyAccess: false/);
    expect(bicep.get("infra/modules/keyvault.bicep")).toMatch(/enableRbacAuthorization: true/);
    expect(settings.map((s) => s.name)).toEqual(
      expect.arrayContaining([
        "AzureWebJobsStorage__blobServiceUri",
        "AzureWebJobsStorage__queueServiceUri",
        "AzureWebJobsStorage__tableServiceUri",
        "AzureWebJobsStorage__credential",
        "AzureWebJobsStorage__clientId",
      ]),
    );
    expect(byName.get("AzureWebJobsStorage__credential")?.value).toBe("managedidentity");
  });
});

describe("host storage in every cloud", () => {
  it("never uses AzureWebJobsStorage__accountName (public-cloud DNS only, per Microsoft's docs)", () => {
    expect(byName.has("AzureWebJobsStorage__accountName")).toBe(false);
    for (const [file, text] of bicep) expect([file, text.includes("__accountName")]).toEqual([file, false]);
  });

  it("sets the blob, queue and table service URIs from the storage account's own endpoints", () => {
    const storage = bicep.get("infra/modules/storage.bicep") ?? "";
    for (const service of ["blob", "queue", "table"]) {
      const name = `AzureWebJobsStorage__${service}ServiceUri`;
      expect([name, byName.get(name)?.set]).toEqual([name, "deployment"]);
      expect([name, deployedValue(name)]).toEqual([name, `storage.outputs.${service}Endpoint`]);
      // The endpoints the account reports, never a name plus a hard-coded core.windows.net suffix.
      expect(storage).toContain(
        `output ${service}Endpoint string = storage.properties.primaryEndpoints.${service}`,
      );
    }
    for (const [file, text] of bicep) expect([file, /core\.windows\.net/.test(text)]).toEqual([file, false]);
  });
});

describe("the Durable Task Scheduler backend (durableBackend)", () => {
  const dts = bicep.get("infra/modules/durable-task-scheduler.bicep") ?? "";

  it("is a parameter: Azure Storage by default, the scheduler on request (azd: KEYTURN_DURABLE_BACKEND)", () => {
    expect(mainBicep).toMatch(
      /@allowed\(\['AzureStorage', 'DurableTaskScheduler'\]\)[\s\S]*?param durableBackend string = 'AzureStorage'/,
    );
    expect(mainBicep).toMatch(/var useScheduler = durableBackend == 'DurableTaskScheduler'/);
    expect(read("infra/main.parameters.json")).toContain(
      '"durableBackend": { "value": "${KEYTURN_DURABLE_BACKEND=AzureStorage}" }',
    );
  });

  it("deploys a scheduler and the task hub host.json names, only for that backend", () => {
    expect(mainBicep).toMatch(
      /module scheduler 'modules\/durable-task-scheduler\.bicep' = if \(useScheduler\)/,
    );
    expect(mainBicep).toMatch(/taskHubName: taskHubName/);
    expect(mainBicep).toMatch(
      /var taskHubName = appSettingOverrides\.\?KEYTURN_TASK_HUB \?\? literalSettings\.KEYTURN_TASK_HUB/,
    );
    expect(dts).toMatch(/resource scheduler 'Microsoft\.DurableTask\/schedulers@[0-9-]+(?:-preview)?'/);
    expect(dts).toMatch(/resource hub 'taskHubs' = \{\s*name: taskHubName/);
    // An empty allow list refuses every caller.
    expect(dts).toMatch(/ipAllowlist: \['0\.0\.0\.0\/0'\]/);
    // The task hub's name is host.json's hubName, so the pattern both accept is the setting's.
    expect(read("host.json")).toContain('"hubName": "%KEYTURN_TASK_HUB%"');
    expect(byName.get("KEYTURN_TASK_HUB")?.value).toMatch(/^[A-Za-z0-9]{3,45}$/);
  });

  it("gives keyturn's identity Durable Task Data Contributor on the scheduler", () => {
    expect(dts).toContain("'0ad04412-c4d5-4796-b79c-f76d14c8d402'"); // Durable Task Data Contributor
    expect(dts).toMatch(
      /scope: scheduler\s*\n\s*properties: \{\s*roleDefinitionId: subscriptionResourceId\('Microsoft\.Authorization\/roleDefinitions', durableTaskDataContributor\)/,
    );
    expect(dts).toMatch(/principalId: principalId\s*\n\s*principalType: 'ServicePrincipal'/);
    expect(mainBicep).toMatch(/module scheduler[\s\S]*?principalId: identity\.outputs\.principalId/);
  });

  it("switches the host to it with app settings (host.json stays AzureStorage) and connects with the identity", () => {
    expect(schedulerSettings()).toEqual({
      AzureFunctionsJobHost__extensions__durableTask__storageProvider__type: "'azureManaged'",
      AzureFunctionsJobHost__extensions__durableTask__storageProvider__connectionStringName:
        "'DURABLE_TASK_SCHEDULER_CONNECTION_STRING'",
      DURABLE_TASK_SCHEDULER_CONNECTION_STRING:
        "'Endpoint=${scheduler!.outputs.endpoint};Authentication=ManagedIdentity;ClientID=${identity.outputs.clientId}'",
    });
    expect(mainBicep).toMatch(/var schedulerSettings = useScheduler\s*\?/);
    const host = JSON.parse(read("host.json")) as {
      extensionBundle: { id: string; version: string };
      extensions: { durableTask: { storageProvider: { type: string } } };
    };
    expect(host.extensions.durableTask.storageProvider.type).toBe("AzureStorage");
    // The azureManaged provider needs extension bundle 4.32.0 or later.
    expect(host.extensionBundle).toEqual({
      id: "Microsoft.Azure.Functions.ExtensionBundle",
      version: "[4.32.0, 5.0.0)",
    });
    for (const name of Object.keys(schedulerSettings()))
      expect([name, byName.get(name)?.deployment]).toEqual([
        name,
        expect.stringContaining("DurableTaskScheduler"),
      ]);
  });
});

describe("the HTTP API's caller identity", () => {
  it("takes the tenant from the deployment and leaves the audience to the operator", () => {
    expect(deployedValue("KEYTURN_API_TENANT_ID")).toBe("tenant().tenantId");
    expect(byName.get("KEYTURN_API_AUDIENCE")?.set).toBe("no");
  });

  it("never reads the App Service Authentication headers (not enforced on Flex Consumption)", () => {
    for (const file of ["functions/http.ts", "functions/auth.ts"]) {
      expect([
        file,
        /x-ms-client-principal|WEBSITE_AUTH_ENABLED/i.test(read(file).replace(/^\s*(\/\/|\*).*$/gm, "")),
      ]).toEqual([file, false]);
    }
  });
});

describe("more Bicep checks", () => {
  it("outputs the storage account's queue endpoint", () => {
    expect(bicep.get("infra/modules/storage.bicep")).toMatch(/output queueEndpoint string/);
  });

  it("sets nothing Flex Consumption rejects (the runtime is in functionAppConfig instead)", () => {
    for (const name of [
      "FUNCTIONS_WORKER_RUNTIME",
      "FUNCTIONS_EXTENSION_VERSION",
      "WEBSITE_RUN_FROM_PACKAGE",
      "WEBSITE_NODE_DEFAULT_VERSION",
    ]) {
      expect(byName.has(name)).toBe(false);
    }
    const app = bicep.get("infra/modules/function-app.bicep") ?? "";
    expect(app).toMatch(/tier: 'FlexConsumption'/);
    expect(app).toMatch(/runtime: \{\s*name: 'node'\s*version: '22'\s*\}/);
    expect(app).toMatch(/kind: 'functionapp,linux'/);
  });
});

/** A role definition file as `az role definition create` takes it. */
interface Role {
  Name: string;
  Description: string;
  Actions: string[];
  NotActions: string[];
  DataActions: string[];
  NotDataActions: string[];
  AssignableScopes: string[];
}

describe("the role file (infra/keyturn-role.json)", () => {
  const role = json<Role>("infra/keyturn-role.json");
  const OPERATION = /^Microsoft\.[A-Za-z]+(?:\/[A-Za-z][A-Za-z0-9]*)+\/(?:read|write|delete|action)$/;

  it("has every field a role definition needs, and denies nothing (it grants exactly)", () => {
    expect(role.Name).toMatch(/\S/);
    expect(role.Description).toMatch(/\S/);
    expect(role.Actions.length).toBeGreaterThan(0);
    expect(role.NotActions).toEqual([]);
    expect(role.NotDataActions).toEqual([]);
    expect(Array.isArray(role.AssignableScopes)).toBe(true);
  });

  it("lists well-formed operations without wildcards", () => {
    for (const action of [...role.Actions, ...role.DataActions]) {
      expect([action, OPERATION.test(action)]).toEqual([action, true]);
      expect(action).not.toContain("*");
    }
  });

  it("lists no operation twice (Azure compares them case-insensitively)", () => {
    for (const list of [role.Actions, role.DataActions]) {
      const lower = list.map((a) => a.toLowerCase());
      expect(lower.filter((a, i) => lower.indexOf(a) !== i)).toEqual([]);
    }
  });

  it("control-plane actions touch only storage (classic too), ML and Batch; data actions only Key Vault secrets", () => {
    for (const action of role.Actions) {
      expect(action).toMatch(
        /^Microsoft\.((Classic)?Storage\/storageAccounts|MachineLearningServices\/(workspaces|locations\/workspaceOperationsStatus)|Batch\/batchAccounts)\//,
      );
    }
    for (const action of role.DataActions) expect(action).toMatch(/^Microsoft\.KeyVault\/vaults\/secrets\//);
  });

  it("is what main.bicep deploys as the custom role", () => {
    expect(mainBicep).toContain("loadJsonContent('keyturn-role.json')");
    for (const field of ["Actions", "NotActions", "DataActions", "NotDataActions", "Name", "Description"]) {
      expect(mainBicep).toContain(`role.${field}`);
    }
  });
});

describe("the Batch role file (infra/keyturn-batch-role.json), opt-in with batchKeys", () => {
  const batchRole = json<Role>("infra/keyturn-batch-role.json");
  const mainRole = json<Role>("infra/keyturn-role.json");
  const lower = (actions: string[]) => actions.map((a) => a.toLowerCase()).sort();

  it("is a well-formed role that grants Batch account actions only, without wildcards, and denies nothing", () => {
    expect(batchRole.Name).toMatch(/\S/);
    expect(batchRole.Name).not.toBe(mainRole.Name);
    expect(batchRole.Description).toMatch(/\S/);
    expect(batchRole.NotActions).toEqual([]);
    expect(batchRole.DataActions).toEqual([]);
    expect(batchRole.NotDataActions).toEqual([]);
    expect(Array.isArray(batchRole.AssignableScopes)).toBe(true);
    for (const action of batchRole.Actions) {
      expect(action).toMatch(/^Microsoft\.Batch\/batchAccounts\/(read|[a-zA-Z]+\/action)$/);
    }
  });

  it("names exactly the actions of the Batch shared-key adapter's operations", () => {
    const used = [OPERATIONS.getBatchAccount, OPERATIONS.getBatchKeys, OPERATIONS.regenerateBatchKey];
    expect(lower(batchRole.Actions)).toEqual(lower([...new Set(used.map((o) => o.action))]));
    expect(OPERATIONS.getBatchKeys.roleFile).toBe("infra/keyturn-batch-role.json");
    expect(OPERATIONS.regenerateBatchKey.roleFile).toBe("infra/keyturn-batch-role.json");
  });

  it("leaves the main role without any Batch key action", () => {
    const keyActions = lower(batchRole.Actions).filter((a) => !a.endsWith("/read"));
    expect(keyActions.length).toBeGreaterThan(0);
    expect(lower(mainRole.Actions).filter((a) => keyActions.includes(a))).toEqual([]);
  });

  it("main.bicep defines and assigns it only when batchKeys is true, on the main role's scopes", () => {
    expect(mainBicep).toMatch(/^param batchKeys bool = false$/m);
    expect(mainBicep).toContain("var batchRole = loadJsonContent('keyturn-batch-role.json')");
    const definition =
      /resource batchKeysRole '[^']+' = if \(batchKeys\) \{[\s\S]*?\n\}/.exec(mainBicep)?.[0] ?? "";
    for (const field of ["Actions", "NotActions", "DataActions", "NotDataActions", "Name", "Description"]) {
      expect(definition).toContain(`batchRole.${field}`);
    }
    expect(definition).toMatch(/assignableScopes: scopeIds\n/);
    expect(mainBicep).toMatch(
      /module batchSubscriptionAssignments 'modules\/role-assignment-subscription\.bicep' = \[\s+for id in \(batchKeys \? subscriptionScopes : \[\]\):/,
    );
    expect(mainBicep).toMatch(
      /module batchResourceGroupAssignments 'modules\/role-assignment-resource-group\.bicep' = \[\s+for g in \(batchKeys \? rotationResourceGroups : \[\]\):/,
    );
    expect(mainBicep.match(/roleDefinitionGuid: batchRoleGuid/g)).toHaveLength(2);
  });

  it("sets KEYTURN_BATCH_KEYS from batchKeys, which azd takes from KEYTURN_BATCH_KEYS (default false)", () => {
    expect(deployedValue("KEYTURN_BATCH_KEYS")).toBe("batchKeys ? 'true' : 'false'");
    expect(byName.get("KEYTURN_BATCH_KEYS")?.set).toBe("deployment");
    const parameters = json<{ parameters: Record<string, { value: unknown }> }>("infra/main.parameters.json");
    expect(parameters.parameters.batchKeys?.value).toBe("${KEYTURN_BATCH_KEYS=false}");
  });
});

describe("Bicep wiring", () => {
  it("loads the settings, role, alerts and workbook files, and every file it loads exists", () => {
    expect(mainBicep).toContain("loadJsonContent('app-settings.json')");
    expect(bicep.get("infra/modules/alerts.bicep")).toContain("loadJsonContent('../alerts.json')");
    expect(bicep.get("infra/modules/alerts.bicep")).toContain("loadJsonContent('../workbook.json')");
    for (const [file, text] of bicep) {
      for (const m of text.matchAll(/load(?:Json|Text|Yaml)Content\('([^']+)'\)/g)) {
        expect([file, m[1], existsSync(join(ROOT, dirname(file), m[1] ?? ""))]).toEqual([file, m[1], true]);
      }
    }
  });

  it("every module main.bicep uses exists", () => {
    const modules = [...mainBicep.matchAll(/^module \w+ '([^']+)'/gm)].map((m) => m[1] ?? "");
    expect(modules.length).toBeGreaterThan(5);
    for (const m of modules) expect([m, existsSync(join(ROOT, "infra", m))]).toEqual([m, true]);
  });

  it("assigns the role at subscription scope through a subscription-scoped module", () => {
    expect(mainBicep).toMatch(/targetScope = 'subscription'/);
    expect(bicep.get("infra/modules/role-assignment-subscription.bicep")).toMatch(
      /targetScope = 'subscription'/,
    );
    expect(mainBicep).toMatch(/scope: subscription\(id\)/);
    expect(mainBicep).toMatch(/scope: resourceGroup\(g\.subscriptionId, g\.resourceGroup\)/);
  });

  it("with resource-group scopes, grants the resync's subscription-level status action on their subscriptions", () => {
    // The status URL lies in the subscription, outside every resource group (docs/deploy.md).
    const role = json<{ Actions: string[] }>("infra/keyturn-role.json");
    const subscriptionLevel = role.Actions.filter((a) => a.toLowerCase().includes("/locations/"));
    expect(subscriptionLevel).toEqual([
      "Microsoft.MachineLearningServices/locations/workspaceOperationsStatus/read",
    ]);
    expect(mainBicep).toContain(
      "var statusActions = filter(role.Actions, a => contains(toLower(a), '/locations/'))",
    );
    const statusRole =
      /resource statusRole '[^']+' = if \(!empty\(groupOnlySubscriptionIds\)\) \{[\s\S]*?\n\}/.exec(
        mainBicep,
      )?.[0];
    expect(statusRole).toMatch(/actions: statusActions\n/);
    expect(statusRole).toMatch(/dataActions: \[\]/);
    expect(statusRole).toMatch(/assignableScopes: map\(groupOnlySubscriptionIds,/);
    expect(mainBicep).toMatch(/id => !contains\(subscriptionScopes, id\)/);
    expect(mainBicep).toMatch(
      /module statusAssignments 'modules\/role-assignment-subscription\.bicep' = \[\s+for id in groupOnlySubscriptionIds:/,
    );
  });

  it("gives the app identity exactly the data roles the durable task hub needs on its storage", () => {
    const storage = bicep.get("infra/modules/storage.bicep") ?? "";
    for (const roleId of [
      "b7e6dc6d-f1e8-4753-8033-0f276bb0955b", // Storage Blob Data Owner
      "974c5e8b-45b9-4653-ba55-5f855dd0fb88", // Storage Queue Data Contributor
      "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3", // Storage Table Data Contributor
    ]) {
      expect(storage).toContain(roleId);
    }
  });

  it("replaces every placeholder in the alert queries", () => {
    const placeholders = new Set(
      alerts.flatMap((a) => [...a.query.matchAll(/\{([A-Za-z]+)\}/g)].map((m) => m[1])),
    );
    for (const p of placeholders) {
      expect(bicep.get("infra/modules/alerts.bicep")).toContain(`replace(alert.query, '{${p}}'`);
    }
  });
});

describe("alerts and workbook query only what keyturn emits", () => {
  it("the checker itself catches unknown events, properties, measurements and values", () => {
    expect(problems(`customEvents | where name == "AccountRotaed"`)).toEqual([
      `"AccountRotaed" is neither an event nor a metric`,
    ]);
    expect(
      problems(`customEvents | where name == "AccountSkipped" | extend c = customDimensions.consumer`),
    ).toEqual(["customDimensions.consumer is not a property of AccountSkipped"]);
    expect(
      problems(`customEvents | where name == "Heartbeat" | extend d = customMeasurements["days"]`),
    ).toEqual(["customMeasurements.days is not a measurement of Heartbeat"]);
    expect(
      problems(
        `customEvents | where name == "RotationCompleted" | where tostring(customDimensions["outcome"]) == "ok"`,
      ),
    ).toEqual([`outcome is never "ok" (it is success|stalled|failed)`]);
    expect(problems(`customEvents | where name == "KeyAgeDays"`)).toEqual([
      "names metrics but reads no customMetrics",
    ]);
    expect(problems(`traces | where message has "x"`)).toEqual([
      "table traces holds nothing keyturn emits",
      "filters on no event or metric name",
    ]);
  });

  // Each query, parsed and analyzed by Kusto's own parser and checked with `problems`: kusto.test.ts.

  it("alerts cover a failed or stalled rotation, an overdue rotation and a key past its policy", () => {
    const names = (query: string) => references(withPlaceholdersReplaced(query)).names;
    const covers = (event: string) => alerts.some((a) => names(a.query).includes(event));
    for (const n of ["AccountStalled", "AccountFailed", "RotationCompleted", "Heartbeat", "KeyAgeDays"]) {
      expect([n, covers(n)]).toEqual([n, true]);
    }
    expect(alerts.find((a) => names(a.query).includes("KeyAgeDays"))?.query).toContain(
      "keyExpirationPeriodInDays",
    );
    // Log alerts cannot look back further than two days.
    for (const a of alerts)
      expect(["PT5M", "PT10M", "PT15M", "PT30M", "PT1H", "PT6H", "PT12H", "P1D", "P2D"]).toContain(
        a.windowSize,
      );
  });

  it("the workbook shows rotations over time, each account's status, key ages and stalled consumers", () => {
    expect(workbook.version).toBe("Notebook/1.0");
    const titles = workbookQueries.map((i) => i.content.title ?? "");
    for (const t of [/rotations over time/i, /status of each/i, /key ages/i, /stalled consumers/i]) {
      expect(titles.some((title) => t.test(title))).toBe(true);
    }
    for (const item of workbookQueries)
      expect(item.content.resourceType).toBe("microsoft.insights/components");
  });

  it("the catalogue's every event and metric shows up in the workbook or an alert", () => {
    const used = new Set(
      [...alerts.map((a) => a.query), ...workbookQueries.map((i) => i.content.query ?? "")].flatMap(
        (q) => references(withPlaceholdersReplaced(q)).names,
      ),
    );
    const unused = [...Object.keys(EVENT_CATALOGUE), ...Object.keys(METRIC_CATALOGUE)].filter(
      (n) => !used.has(n) && !["RotationStarted", "RotationDurationMs", "ArmCalls"].includes(n),
    );
    expect(unused).toEqual([]);
  });
});

describe("azd, CI and docs", () => {
  it("azure.yaml deploys infra/main.bicep and the Functions app", () => {
    const yaml = read("azure.yaml");
    expect(yaml).toMatch(/^infra:\s*\n\s+provider: bicep\s*\n\s+path: infra\s*\n\s+module: main/m);
    expect(yaml).toMatch(/^\s+keyturn:\s*\n(?:\s+.*\n)*?\s+host: function/m);
    expect(bicep.get("infra/modules/function-app.bicep")).toContain("'azd-service-name': 'keyturn'");
  });

  it("the workflow builds and lints every Bicep file and validates when Azure credentials exist", () => {
    const workflow = read(".github/workflows/infra.yml");
    expect(workflow).toContain("az bicep build");
    expect(workflow).toContain("az bicep lint");
    expect(workflow).toContain("az deployment sub validate");
    expect(workflow).toContain("az deployment sub what-if");
  });

  it("docs/deploy.md documents every app setting", () => {
    const doc = read("docs/deploy.md");
    const undocumented = settings.map((s) => s.name).filter((n) => !doc.includes(`\`${n}\``));
    expect(undocumented).toEqual([]);
  });
});

describe("host.json", () => {
  const host = JSON.parse(readFileSync(join(__dirname, "..", "..", "..", "host.json"), "utf8")) as {
    extensions: { durableTask: { storageProvider: { workItemQueueVisibilityTimeout?: string } } };
  };

  it("keeps a dead worker's activity from running again until its ARM requests can no longer land", () => {
    const timeout = host.extensions.durableTask.storageProvider.workItemQueueVisibilityTimeout ?? "";
    const [h, m, s] = timeout.split(":").map(Number) as [number, number, number];
    // A regeneration sent just before the worker died may land until its deadline; the activity's
    // re-run reads the keys first and must see it (I4).
    expect(h * 3600 + m * 60 + s).toBeGreaterThan(DEFAULT_ARM_TIMEOUT_SECONDS);
  });
});
