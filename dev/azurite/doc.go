// Package azurite runs the Blob service of Azurite, the Azure Storage
// emulator (npm package azurite), for the local stack and the tests: the
// handler claims finished Databricks runs in it as it does in the app's
// storage account in Azure.
//
// Azurite is found in the project's own npm folder, .nbtrace/node (see
// InstallCommand), else as azurite-blob on the PATH. It listens on a free
// loopback port, keeps its data in memory and sends no telemetry. On Linux
// it is killed with the process that started it (Pdeathsig); elsewhere
// that process stops it (Server.Stop), so a killed test process can leave
// it running there.
package azurite
