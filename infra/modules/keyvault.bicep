// The vault keyturn publishes storage keys to, for consumers that read a key from Key Vault. RBAC
// authorization only (no access policies), and keyturn gets its own custom role here rather than a
// built-in one: exactly the secret actions in keyturn-role.json, nothing to delete or purge.
param name string
param location string
param tags object
param purgeProtection bool
@description('Principal of keyturn\'s identity.')
param principalId string
@description('Name (GUID) of the keyturn custom role definition in this subscription.')
param roleDefinitionGuid string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    // Purge protection can only be turned on; `null` leaves it off without claiming `false`.
    enablePurgeProtection: purgeProtection ? true : null
    publicNetworkAccess: 'Enabled'
  }
}

resource keyturnOnVault 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, roleDefinitionGuid)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionGuid)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output id string = vault.id
output name string = vault.name
output uri string = vault.properties.vaultUri
