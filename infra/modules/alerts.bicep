// Alert rules and the workbook, both over keyturn's own telemetry in Application Insights. The
// queries live in alerts.json and workbook.json, where test/unit/infra checks them against the
// event catalogue in shared/telemetry/events.ts.
param namePrefix string
param location string
param tags object
param appInsightsId string
@description('Email address alerts go to; empty for none.')
param alertEmail string
param overdueAfterDays int

var alertFile = loadJsonContent('../alerts.json')
var actionGroupName = '${namePrefix}-alerts'
var workbookContent = loadJsonContent('../workbook.json')

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: actionGroupName
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'keyturn'
    enabled: true
    emailReceivers: [
      {
        name: 'keyturn-operators'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

resource rules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [
  for alert in alertFile.alerts: {
    name: '${namePrefix}-${alert.name}'
    location: location
    tags: tags
    kind: 'LogAlert'
    dependsOn: [actionGroup]
    properties: {
      displayName: alert.displayName
      description: replace(alert.description, '{overdueAfterDays}', string(overdueAfterDays))
      severity: alert.severity
      enabled: true
      scopes: [appInsightsId]
      evaluationFrequency: alert.evaluationFrequency
      windowSize: alert.windowSize
      autoMitigate: alert.autoMitigate
      criteria: {
        allOf: [
          {
            query: replace(alert.query, '{overdueAfterDays}', string(overdueAfterDays))
            timeAggregation: 'Count'
            operator: 'GreaterThan'
            threshold: 0
            dimensions: [
              for dimension in alert.dimensions: {
                name: dimension
                operator: 'Include'
                values: ['*']
              }
            ]
            failingPeriods: {
              numberOfEvaluationPeriods: 1
              minFailingPeriodsToAlert: 1
            }
          }
        ]
      }
      actions: {
        actionGroups: empty(alertEmail) ? [] : [resourceId('Microsoft.Insights/actionGroups', actionGroupName)]
      }
    }
  }
]

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, namePrefix, 'keyturn-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'keyturn: storage key rotation'
    category: 'workbook'
    sourceId: appInsightsId
    serializedData: string(union(workbookContent, { fallbackResourceIds: [appInsightsId] }))
  }
}

output workbookId string = workbook.id
output alertRuleIds string[] = [for (alert, i) in alertFile.alerts: rules[i].id]
