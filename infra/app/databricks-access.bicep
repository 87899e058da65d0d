// Contributor on an existing Databricks workspace for the deploying user
// (deployed in the workspace's resource group), so that the deploy step is
// let in as a workspace admin.
param workspaceName string
param principalId string
param principalType string

resource workspace 'Microsoft.Databricks/workspaces@2024-05-01' existing = {
  name: workspaceName
}

var contributor = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'b24988ac-6180-42a0-ab88-20f7382dd24c') // Contributor

resource access 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, principalId, contributor)
  scope: workspace
  properties: {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: contributor
  }
}
