// The Durable Task Scheduler backend (durableBackend = 'DurableTaskScheduler'): a scheduler, the task
// hub the app's host.json names (%KEYTURN_TASK_HUB%), and Durable Task Data Contributor for keyturn's
// identity on the scheduler. The scheduler's dashboard (https://dashboard.durabletask.io, or the task
// hub's page in the portal) is where an operator watches orchestrations; see docs/deploy.md.
param name string
param location string
param tags object
@description('Task hub name: the value of KEYTURN_TASK_HUB, which host.json reads as the hub name.')
param taskHubName string
@description('Principal of keyturn\'s identity.')
param principalId string

// Built-in role "Durable Task Data Contributor": all data operations on schedulers and task hubs.
var durableTaskDataContributor = '0ad04412-c4d5-4796-b79c-f76d14c8d402'

resource scheduler 'Microsoft.DurableTask/schedulers@2025-11-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    sku: { name: 'Consumption' }
    // An empty allow list denies every caller; the scheduler is reached with Entra ID tokens only.
    ipAllowlist: ['0.0.0.0/0']
  }

  resource hub 'taskHubs' = {
    name: taskHubName
  }
}

resource contributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(scheduler.id, principalId, durableTaskDataContributor)
  scope: scheduler
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', durableTaskDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output name string = scheduler.name
output endpoint string = scheduler.properties.endpoint
output taskHubName string = scheduler::hub.name
output taskHubId string = scheduler::hub.id
