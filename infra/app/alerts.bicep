// The alerts the original sample meant to set up by hand: failed-request
// rate, p95 latency of notebook and validate, and failed Databricks runs,
// over Application Insights, notifying an action group.
param location string
param tags object
param resourceToken string
param appInsightsId string
param alertEmail string
param actionGroupId string
param failedRequestRateThreshold string
param p95LatencyThresholdMs int

var makeGroup = empty(actionGroupId) && !empty(alertEmail)

module group 'br/public:avm/res/insights/action-group:0.8.0' = if (makeGroup) {
  params: {
    name: 'ag-nbtrace-${resourceToken}'
    groupShortName: 'nbtrace'
    location: 'global'
    tags: tags
    emailReceivers: [{ name: 'email', emailAddress: alertEmail, useCommonAlertSchema: true }]
  }
}

var groups = !empty(actionGroupId) ? [actionGroupId] : (makeGroup ? [group!.outputs.resourceId] : [])

// Each alert: a log query over the component's tables.
var alertDefs = [
  {
    name: 'failed-requests'
    description: 'More than ${failedRequestRateThreshold} of the handler\'s requests failed in 15 minutes.'
    severity: 2
    query: 'requests | where cloud_RoleName endswith "nbtrace" | summarize rate = todouble(countif(success == false)) / count() | where rate > ${failedRequestRateThreshold}'
  }
  {
    name: 'notebook-p95-latency'
    description: 'The 95th percentile of notebook took longer than ${p95LatencyThresholdMs} ms in 15 minutes.'
    severity: 3
    query: 'requests | where name == "POST /api/notebook" | summarize p95 = percentile(duration, 95) | where p95 > ${p95LatencyThresholdMs}'
  }
  {
    name: 'validate-p95-latency'
    description: 'The 95th percentile of validate took longer than ${p95LatencyThresholdMs} ms in 15 minutes.'
    severity: 3
    query: 'requests | where name == "POST /api/validate" | summarize p95 = percentile(duration, 95) | where p95 > ${p95LatencyThresholdMs}'
  }
  {
    name: 'databricks-run-failures'
    description: 'A run of the notebook job ended without success.'
    severity: 2
    query: 'customMetrics | where name == "nbtrace.databricks.runs.failed" | summarize failed = sum(valueSum) | where failed > 0'
  }
]

module rules 'br/public:avm/res/insights/scheduled-query-rule:0.6.0' = [
  for a in alertDefs: {
    params: {
      name: 'alert-${a.name}-${resourceToken}'
      location: location
      tags: tags
      kind: 'LogAlert'
      alertDisplayName: 'nbtrace: ${a.name}'
      alertDescription: a.description
      severity: a.severity
      scopes: [appInsightsId]
      evaluationFrequency: 'PT5M'
      windowSize: 'PT15M'
      autoMitigate: true
      criterias: {
        allOf: [
          {
            query: a.query
            timeAggregation: 'Count'
            operator: 'GreaterThan'
            threshold: 0
            failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
          }
        ]
      }
      actions: { actionGroupResourceIds: groups }
    }
  }
]
