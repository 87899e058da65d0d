// Contributor on an existing Databricks workspace for the given principals
// (deployed in the workspace's resource group).
param workspaceName string
param principalIds array

resource workspace 'Microsoft.Databricks/workspaces@2024-05-01' existing = {
  name: workspaceName
}

var contributor = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'b24988ac-6180-42a0-ab88-20f7382dd24c') // Contributor

resource access 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for id in principalIds: {
    name: guid(workspace.id, id, contributor)
    scope: workspace
    properties: {
      principalId: id
      roleDefinitionId: contributor
    }
  }
]
