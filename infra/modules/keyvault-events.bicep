// Key Vault's SecretNearExpiry events (30 days before a secret version's `exp`) to keyturn's Event
// Grid function, which starts a rotation of the storage account a published secret holds a key of
// (functions/eventgrid.ts). An Event Grid system topic on the vault, and one subscription on it.
param vaultName string
param location string
param tags object
@description('Resource id of keyturn\'s Function App.')
param functionAppId string
@description('The Event Grid-triggered function (functions/eventgrid.ts EVENT_GRID_FUNCTION).')
param functionName string = 'secretNearExpiry'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: 'evgt-${vaultName}'
  location: location
  tags: tags
  properties: {
    source: vault.id
    topicType: 'Microsoft.KeyVault.vaults'
  }
}

// An AzureFunction destination: Event Grid calls the function with its own system key, so no key or
// URL is read here. The function must already be deployed when this is created.
resource nearExpiry 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: 'keyturn-secret-near-expiry'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionAppId}/functions/${functionName}'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    filter: {
      includedEventTypes: [
        'Microsoft.KeyVault.SecretNearExpiry'
      ]
    }
    eventDeliverySchema: 'EventGridSchema'
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}

output systemTopicId string = topic.id
output eventSubscriptionId string = nearExpiry.id
