// The Function App on the Flex Consumption plan (Linux, Node 22). It runs as the user-assigned
// identity for everything: its storage, its deployment package, Application Insights, Azure.
param appName string
param planName string
param location string
param tags object
@description('Resource id of keyturn\'s user-assigned identity.')
param identityId string
@description('Blob container URL the deployment package is uploaded to.')
param deploymentContainerUrl string
@description('App settings, by name (see infra/app-settings.json).')
param appSettings object
@minValue(40)
@maxValue(1000)
@description('Flex Consumption\'s lowest allowed cap; keyturn\'s own concurrency is KEYTURN_PARALLELISM.')
param maximumInstanceCount int = 40

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  // azd finds the app to deploy to by this tag (the service's name in azure.yaml).
  tags: union(tags, { 'azd-service-name': 'keyturn' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: 2048
      }
      runtime: {
        name: 'node'
        version: '22'
      }
    }
  }

  resource settings 'config' = {
    name: 'appsettings'
    properties: appSettings
  }

  // No FTP or SCM basic-auth publishing: deployments go through Entra ID (azd, az functionapp deploy).
  resource ftp 'basicPublishingCredentialsPolicies' = {
    name: 'ftp'
    properties: { allow: false }
  }

  resource scm 'basicPublishingCredentialsPolicies' = {
    name: 'scm'
    properties: { allow: false }
  }
}

output name string = app.name
output id string = app.id
output url string = 'https://${app.properties.defaultHostName}'
