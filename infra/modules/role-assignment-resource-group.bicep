// keyturn's custom role on one resource group it rotates in.
targetScope = 'resourceGroup'

@description('Name (GUID) of the keyturn custom role definition.')
param roleDefinitionGuid string
param principalId string

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, roleDefinitionGuid)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionGuid)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'keyturn: rotate the storage account keys in this resource group'
  }
}

output id string = assignment.id
