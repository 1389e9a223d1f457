// keyturn's custom role on a whole subscription it rotates in.
targetScope = 'subscription'

@description('Name (GUID) of the keyturn custom role definition.')
param roleDefinitionGuid string
param principalId string

resource assignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subscription().id, principalId, roleDefinitionGuid)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleDefinitionGuid)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'keyturn: rotate the storage account keys in this subscription'
  }
}

output id string = assignment.id
