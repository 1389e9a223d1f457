// keyturn: one deployment per tenant (or per platform team). Subscription scope, because keyturn
// needs things a resource-group deployment cannot make: its own resource group, a custom role
// definition, and role assignments on the subscriptions and resource groups it rotates in.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Environment name (azd sets it): names and tags every resource.')
param environmentName string

@minLength(1)
@description('Region of every resource. Flex Consumption is not offered in every region.')
@metadata({ azd: { type: 'location' } })
param location string

@description('Resource group for keyturn itself; default rg-<environmentName>.')
param resourceGroupName string = ''

@description('Subscriptions keyturn rotates in (ids, not resource ids): the role is assigned on each whole subscription. With neither this nor rotationResourceGroups, the subscription of this deployment.')
param rotationSubscriptionIds string[] = []

@description('Resource groups keyturn rotates in, for a narrower scope than whole subscriptions.')
param rotationResourceGroups resourceGroupScope[] = []

@description('Email address that alerts go to; empty for no email (the alerts still show in the portal).')
param alertEmail string = ''

@minValue(2)
@description('Days without a successful rotation before the overdue alert fires: the schedule (monthly) plus a margin.')
param overdueAfterDays int = 35

@description('App settings to set or change, by name, e.g. { KEYTURN_SCHEDULE: \'0 0 2 * * 0\' }. Names must be in infra/app-settings.json.')
param appSettingOverrides object = {}

@description('Purge protection on keyturn\'s Key Vault. Irreversible once on: a deleted vault then stays recoverable for 90 days and its name stays taken.')
param keyVaultPurgeProtection bool = true

@description('Subscribe keyturn\'s Event Grid function to its Key Vault\'s SecretNearExpiry events (a rotation of the account when a published key nears its expiry). The function must be deployed first: turn this on after the first code deployment.')
param subscribeSecretNearExpiry bool = false

@allowed(['AzureStorage', 'DurableTaskScheduler'])
@description('Where Durable Functions keeps orchestration state: AzureStorage (tables, queues and blobs in keyturn\'s own storage account) or DurableTaskScheduler (a Durable Task Scheduler and task hub, with its dashboard). Switching starts from an empty task hub: let running rotations finish first.')
param durableBackend string = 'AzureStorage'

@description('Also rotate the shared keys of Batch accounts (opt-in): defines the role in keyturn-batch-role.json, assigns it on the same scopes as the main role, and sets KEYTURN_BATCH_KEYS. Off: the identity cannot read or regenerate any Batch key.')
param batchKeys bool = false

@description('Also rotate the admin passwords of the workspaces\' container registries (opt-in): defines the role in keyturn-registry-role.json, assigns it on the same scopes as the main role, and sets KEYTURN_ROTATE_REGISTRIES. Off: the identity cannot read or regenerate any registry password.')
param registryPasswords bool = false

@description('A resource group keyturn rotates in.')
type resourceGroupScope = {
  @description('The subscription id (a GUID).')
  subscriptionId: string
  @description('The resource group name.')
  resourceGroup: string
}

var tags = { 'azd-env-name': environmentName, application: 'keyturn' }
var token = toLower(uniqueString(subscription().id, environmentName, location))

// The one role file (I7): the emulator enforces it, tests check it against the code, and this
// deploys it as a custom role.
var role = loadJsonContent('keyturn-role.json')
// The second role file: the Batch shared-key actions, deployed and assigned only with batchKeys.
var batchRole = loadJsonContent('keyturn-batch-role.json')
// The third: the registry admin password actions, deployed and assigned only with registryPasswords.
var registryRole = loadJsonContent('keyturn-registry-role.json')
var settingsFile = loadJsonContent('app-settings.json')

var subscriptionScopes = empty(rotationSubscriptionIds) && empty(rotationResourceGroups) ? [subscription().subscriptionId] : rotationSubscriptionIds
var rotatedSubscriptionIds = union(subscriptionScopes, map(rotationResourceGroups, g => g.subscriptionId))
var subscriptionScopeIds = map(subscriptionScopes, id => '/subscriptions/${id}')
var resourceGroupScopeIds = map(rotationResourceGroups, g => '/subscriptions/${g.subscriptionId}/resourceGroups/${g.resourceGroup}')
var scopeIds = union(subscriptionScopeIds, resourceGroupScopeIds)

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: empty(resourceGroupName) ? 'rg-${environmentName}' : resourceGroupName
  location: location
  tags: tags
}

// Custom role names are unique per tenant: the environment name keeps two deployments apart. This
// subscription is assignable too, for the role's assignment on keyturn's own Key Vault.
resource keyturnRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, 'keyturn-role')
  properties: {
    roleName: '${role.Name} (${environmentName})'
    description: role.Description
    type: 'CustomRole'
    permissions: [
      {
        actions: role.Actions
        notActions: role.NotActions
        dataActions: role.DataActions
        notDataActions: role.NotDataActions
      }
    ]
    assignableScopes: union(scopeIds, [subscription().id])
  }
}

module identity 'modules/identity.bicep' = {
  name: 'keyturn-identity'
  scope: rg
  params: {
    name: 'id-keyturn-${token}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'keyturn-monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-keyturn-${token}'
    appInsightsName: 'appi-keyturn-${token}'
    location: location
    tags: tags
    publisherPrincipalId: identity.outputs.principalId
  }
}

module storage 'modules/storage.bicep' = {
  name: 'keyturn-storage'
  scope: rg
  params: {
    name: 'stkeyturn${take(token, 13)}'
    location: location
    tags: tags
    deploymentContainerName: 'app-package'
    principalId: identity.outputs.principalId
  }
}

module vault 'modules/keyvault.bicep' = {
  name: 'keyturn-keyvault'
  scope: rg
  params: {
    name: 'kv-keyturn-${take(token, 13)}'
    location: location
    tags: tags
    purgeProtection: keyVaultPurgeProtection
    principalId: identity.outputs.principalId
    roleDefinitionGuid: keyturnRole.name
  }
}

// `literal` settings in app-settings.json are set as they are; these are the `deployment` ones.
var literalSettings = toObject(filter(settingsFile.settings, s => s.set == 'literal'), s => s.name, s => s.value)
var taskHubName = appSettingOverrides.?KEYTURN_TASK_HUB ?? literalSettings.KEYTURN_TASK_HUB
var useScheduler = durableBackend == 'DurableTaskScheduler'

module scheduler 'modules/durable-task-scheduler.bicep' = if (useScheduler) {
  name: 'keyturn-durable-task-scheduler'
  scope: rg
  params: {
    name: 'dts-keyturn-${token}'
    location: location
    tags: tags
    taskHubName: taskHubName
    principalId: identity.outputs.principalId
  }
}

var deploymentSettings = {
  KEYTURN_SUBSCRIPTIONS: join(rotatedSubscriptionIds, ',')
  KEYTURN_KEY_VAULT_URL: vault.outputs.uri
  KEYTURN_AUDIT_TABLE_URL: '${storage.outputs.tableEndpoint}keyturnaudit'
  AZURE_CLIENT_ID: identity.outputs.clientId
  APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.connectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD;ClientId=${identity.outputs.clientId}'
  // The host's storage by its service URIs, as the storage account reports them: right in every cloud
  // and with custom DNS, where the account-name shorthand (public-cloud DNS only) is not.
  AzureWebJobsStorage__blobServiceUri: storage.outputs.blobEndpoint
  AzureWebJobsStorage__queueServiceUri: storage.outputs.queueEndpoint
  AzureWebJobsStorage__tableServiceUri: storage.outputs.tableEndpoint
  AzureWebJobsStorage__clientId: identity.outputs.clientId
  KEYTURN_API_TENANT_ID: tenant().tenantId
  KEYTURN_BATCH_KEYS: batchKeys ? 'true' : 'false'
  KEYTURN_ROTATE_REGISTRIES: registryPasswords ? 'true' : 'false'
}

// durableBackend = 'DurableTaskScheduler': host.json's storage provider is overridden by app settings
// (AzureFunctionsJobHost__path__to__setting, see docs/deploy.md), so one package serves both backends.
var schedulerSettings = useScheduler
  ? {
      AzureFunctionsJobHost__extensions__durableTask__storageProvider__type: 'azureManaged'
      AzureFunctionsJobHost__extensions__durableTask__storageProvider__connectionStringName: 'DURABLE_TASK_SCHEDULER_CONNECTION_STRING'
      DURABLE_TASK_SCHEDULER_CONNECTION_STRING: 'Endpoint=${scheduler!.outputs.endpoint};Authentication=ManagedIdentity;ClientID=${identity.outputs.clientId}'
    }
  : {}

module app 'modules/function-app.bicep' = {
  name: 'keyturn-function-app'
  scope: rg
  params: {
    appName: 'func-keyturn-${token}'
    planName: 'plan-keyturn-${token}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    deploymentContainerUrl: '${storage.outputs.blobEndpoint}app-package'
    appSettings: union(literalSettings, deploymentSettings, schedulerSettings, appSettingOverrides)
  }
}

// SecretNearExpiry on the vault → the Event Grid function (functions/eventgrid.ts). Conditional, because
// an Event Grid subscription to a function needs the function deployed: see docs/deploy.md.
module vaultEvents 'modules/keyvault-events.bicep' = if (subscribeSecretNearExpiry) {
  name: 'keyturn-keyvault-events'
  scope: rg
  params: {
    vaultName: vault.outputs.name
    location: location
    tags: tags
    functionAppId: app.outputs.id
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'keyturn-alerts'
  scope: rg
  params: {
    namePrefix: 'keyturn-${environmentName}'
    location: location
    tags: tags
    appInsightsId: monitoring.outputs.appInsightsId
    alertEmail: alertEmail
    overdueAfterDays: overdueAfterDays
  }
}

// One module per scope: a role assignment lives at the scope it grants, and this deployment's own
// scope is only the subscription it runs in.
module subscriptionAssignments 'modules/role-assignment-subscription.bicep' = [
  for id in subscriptionScopes: {
    name: 'keyturn-role-${uniqueString(id, environmentName)}'
    scope: subscription(id)
    params: {
      roleDefinitionGuid: keyturnRole.name
      principalId: identity.outputs.principalId
    }
  }
]

// A resync's status URL (.../locations/{region}/workspaceOperationsStatus/{id}) lies in the
// subscription but in no resource group, so assignments on resource groups do not cover it: where a
// subscription is in scope only through resource groups, a role with the role file's subscription-level
// (`/locations/`) actions alone is assigned on that subscription. Nothing else is granted there.
var statusActions = filter(role.Actions, a => contains(toLower(a), '/locations/'))
var groupOnlySubscriptionIds = filter(
  union(map(rotationResourceGroups, g => g.subscriptionId), []),
  id => !contains(subscriptionScopes, id)
)
var statusRoleGuid = guid(subscription().id, environmentName, 'keyturn-status-role')

resource statusRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (!empty(groupOnlySubscriptionIds)) {
  name: statusRoleGuid
  properties: {
    roleName: '${role.Name} resync status reader (${environmentName})'
    description: 'keyturn: read the status of the workspace key resyncs it starts in resource groups of this subscription'
    type: 'CustomRole'
    permissions: [
      {
        actions: statusActions
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: map(groupOnlySubscriptionIds, id => '/subscriptions/${id}')
  }
}

module statusAssignments 'modules/role-assignment-subscription.bicep' = [
  for id in groupOnlySubscriptionIds: {
    name: 'keyturn-status-${uniqueString(id, environmentName)}'
    scope: subscription(id)
    params: {
      roleDefinitionGuid: statusRoleGuid
      principalId: identity.outputs.principalId
    }
    dependsOn: [statusRole]
  }
]

module resourceGroupAssignments 'modules/role-assignment-resource-group.bicep' = [
  for g in rotationResourceGroups: {
    name: 'keyturn-role-${uniqueString(g.subscriptionId, g.resourceGroup, environmentName)}'
    scope: resourceGroup(g.subscriptionId, g.resourceGroup)
    params: {
      roleDefinitionGuid: keyturnRole.name
      principalId: identity.outputs.principalId
    }
  }
]

// batchKeys: the Batch role on every scope the main role is assigned on, and nowhere without it.
var batchRoleGuid = guid(subscription().id, environmentName, 'keyturn-batch-role')

resource batchKeysRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (batchKeys) {
  name: batchRoleGuid
  properties: {
    roleName: '${batchRole.Name} (${environmentName})'
    description: batchRole.Description
    type: 'CustomRole'
    permissions: [
      {
        actions: batchRole.Actions
        notActions: batchRole.NotActions
        dataActions: batchRole.DataActions
        notDataActions: batchRole.NotDataActions
      }
    ]
    assignableScopes: scopeIds
  }
}

module batchSubscriptionAssignments 'modules/role-assignment-subscription.bicep' = [
  for id in (batchKeys ? subscriptionScopes : []): {
    name: 'keyturn-batch-role-${uniqueString(id, environmentName)}'
    scope: subscription(id)
    params: {
      roleDefinitionGuid: batchRoleGuid
      principalId: identity.outputs.principalId
    }
    dependsOn: [batchKeysRole]
  }
]

module batchResourceGroupAssignments 'modules/role-assignment-resource-group.bicep' = [
  for g in (batchKeys ? rotationResourceGroups : []): {
    name: 'keyturn-batch-role-${uniqueString(g.subscriptionId, g.resourceGroup, environmentName)}'
    scope: resourceGroup(g.subscriptionId, g.resourceGroup)
    params: {
      roleDefinitionGuid: batchRoleGuid
      principalId: identity.outputs.principalId
    }
    dependsOn: [batchKeysRole]
  }
]

// registryPasswords: the registry role on every scope the main role is assigned on, and nowhere without it.
// With resource-group scopes, a workspace's registry in another resource group is not covered.
var registryRoleGuid = guid(subscription().id, environmentName, 'keyturn-registry-role')

resource registryPasswordsRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (registryPasswords) {
  name: registryRoleGuid
  properties: {
    roleName: '${registryRole.Name} (${environmentName})'
    description: registryRole.Description
    type: 'CustomRole'
    permissions: [
      {
        actions: registryRole.Actions
        notActions: registryRole.NotActions
        dataActions: registryRole.DataActions
        notDataActions: registryRole.NotDataActions
      }
    ]
    assignableScopes: scopeIds
  }
}

module registrySubscriptionAssignments 'modules/role-assignment-subscription.bicep' = [
  for id in (registryPasswords ? subscriptionScopes : []): {
    name: 'keyturn-registry-role-${uniqueString(id, environmentName)}'
    scope: subscription(id)
    params: {
      roleDefinitionGuid: registryRoleGuid
      principalId: identity.outputs.principalId
    }
    dependsOn: [registryPasswordsRole]
  }
]

module registryResourceGroupAssignments 'modules/role-assignment-resource-group.bicep' = [
  for g in (registryPasswords ? rotationResourceGroups : []): {
    name: 'keyturn-registry-role-${uniqueString(g.subscriptionId, g.resourceGroup, environmentName)}'
    scope: resourceGroup(g.subscriptionId, g.resourceGroup)
    params: {
      roleDefinitionGuid: registryRoleGuid
      principalId: identity.outputs.principalId
    }
    dependsOn: [registryPasswordsRole]
  }
]

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = app.outputs.name
output KEYTURN_API_URL string = app.outputs.url
output KEYTURN_KEY_VAULT_URL string = vault.outputs.uri
output KEYTURN_ROLE_ID string = keyturnRole.id
output KEYTURN_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output KEYTURN_WORKBOOK_ID string = alerts.outputs.workbookId
output KEYTURN_DURABLE_BACKEND string = durableBackend
output KEYTURN_DURABLE_TASK_SCHEDULER_ENDPOINT string = useScheduler ? scheduler!.outputs.endpoint : ''
