// The Azure Databricks workspace, or an existing one. The deploying user
// gets Contributor on it: with the workspace's ARM id in each request
// (DATABRICKS_AZURE_RESOURCE_ID), a Contributor is let in as a workspace
// admin on first use, so the deploy step needs no step inside Databricks
// before it. The app's identity holds no Azure role on the workspace: the
// deploy step makes it a workspace service principal with CAN_MANAGE_RUN
// on the job, all it needs.
param location string
param tags object
param name string
param sku string
param existingWorkspaceId string
param userPrincipalId string
param userPrincipalType string

var useExisting = !empty(existingWorkspaceId)
// The existing workspace's subscription and resource group; harmless
// placeholders when there is none, since scopes are evaluated regardless.
var existingParts = split(useExisting ? existingWorkspaceId : '/subscriptions/${subscription().subscriptionId}/resourceGroups/${resourceGroup().name}/providers/Microsoft.Databricks/workspaces/none', '/')

module workspace 'br/public:avm/res/databricks/workspace:0.12.0' = if (!useExisting) {
  params: {
    name: name
    location: location
    tags: tags
    skuName: sku
    publicNetworkAccess: 'Enabled'
    roleAssignments: empty(userPrincipalId) ? [] : [
      { principalId: userPrincipalId, principalType: userPrincipalType, roleDefinitionIdOrName: 'b24988ac-6180-42a0-ab88-20f7382dd24c' } // Contributor
    ]
  }
}

resource existing 'Microsoft.Databricks/workspaces@2024-05-01' existing = if (useExisting) {
  name: last(existingParts)
  scope: resourceGroup(existingParts[2], existingParts[4])
}

output workspaceUrl string = useExisting ? existing!.properties.workspaceUrl : workspace!.outputs.workspaceUrl
output resourceId string = useExisting ? existingWorkspaceId : workspace!.outputs.resourceId
