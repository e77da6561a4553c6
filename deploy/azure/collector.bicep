// deploy/azure/collector.bicep: what cefd sends to. A data collection endpoint (DCE), a data
// collection rule (DCR) whose Custom-CommonSecurityLog stream flows into CommonSecurityLog (and
// whose Custom-Syslog stream flows into Syslog), and a user-assigned identity for the
// collectors holding Monitoring Metrics Publisher on that DCR. collector.json is the same
// template in ARM JSON, written by hand (tests/deploy/azure_templates_test.cpp checks that the
// two agree, and that the stream names are cefd's defaults).
//
//   az deployment group create -g <rg> -f deploy/azure/collector.bicep \
//     -p workspaceResourceId=<workspace resource id>
// The outputs are the [azure] values of /etc/cefd/cefd.toml: endpoint, dcr_id, client_id.

@description('Region of the Log Analytics workspace; the DCE and the DCR must be in the same one.')
param location string = resourceGroup().location

@description('Resource id of the Log Analytics workspace, with Microsoft Sentinel enabled on it.')
param workspaceResourceId string

@description('Prefix of every resource name.')
param namePrefix string = 'cefd'

@description('Principal (object) id of one more sender, such as the app registration for auth = "client_secret"; empty for none.')
param extraPrincipalId string = ''

// Monitoring Metrics Publisher: the built-in role the Logs Ingestion API checks.
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

// Every CommonSecurityLog column cefd may send (engine/row/columns.h without the columns the
// service fills: TenantId, Type, _*). A column not declared here is dropped without an error.
var commonSecurityLogColumns = [
  { name: 'Activity', type: 'string' }
  { name: 'AdditionalExtensions', type: 'string' }
  { name: 'ApplicationProtocol', type: 'string' }
  { name: 'CollectorHostName', type: 'string' }
  { name: 'CommunicationDirection', type: 'string' }
  { name: 'Computer', type: 'string' }
  { name: 'DestinationDnsDomain', type: 'string' }
  { name: 'DestinationHostName', type: 'string' }
  { name: 'DestinationIP', type: 'string' }
  { name: 'DestinationMACAddress', type: 'string' }
  { name: 'DestinationNTDomain', type: 'string' }
  { name: 'DestinationPort', type: 'int' }
  { name: 'DestinationProcessId', type: 'int' }
  { name: 'DestinationProcessName', type: 'string' }
  { name: 'DestinationServiceName', type: 'string' }
  { name: 'DestinationTranslatedAddress', type: 'string' }
  { name: 'DestinationTranslatedPort', type: 'int' }
  { name: 'DestinationUserID', type: 'string' }
  { name: 'DestinationUserName', type: 'string' }
  { name: 'DestinationUserPrivileges', type: 'string' }
  { name: 'DeviceAction', type: 'string' }
  { name: 'DeviceAddress', type: 'string' }
  { name: 'DeviceCustomDate1', type: 'string' }
  { name: 'DeviceCustomDate1Label', type: 'string' }
  { name: 'DeviceCustomDate2', type: 'string' }
  { name: 'DeviceCustomDate2Label', type: 'string' }
  { name: 'DeviceCustomFloatingPoint1', type: 'real' }
  { name: 'DeviceCustomFloatingPoint1Label', type: 'string' }
  { name: 'DeviceCustomFloatingPoint2', type: 'real' }
  { name: 'DeviceCustomFloatingPoint2Label', type: 'string' }
  { name: 'DeviceCustomFloatingPoint3', type: 'real' }
  { name: 'DeviceCustomFloatingPoint3Label', type: 'string' }
  { name: 'DeviceCustomFloatingPoint4', type: 'real' }
  { name: 'DeviceCustomFloatingPoint4Label', type: 'string' }
  { name: 'DeviceCustomIPv6Address1', type: 'string' }
  { name: 'DeviceCustomIPv6Address1Label', type: 'string' }
  { name: 'DeviceCustomIPv6Address2', type: 'string' }
  { name: 'DeviceCustomIPv6Address2Label', type: 'string' }
  { name: 'DeviceCustomIPv6Address3', type: 'string' }
  { name: 'DeviceCustomIPv6Address3Label', type: 'string' }
  { name: 'DeviceCustomIPv6Address4', type: 'string' }
  { name: 'DeviceCustomIPv6Address4Label', type: 'string' }
  { name: 'DeviceCustomNumber1', type: 'int' }
  { name: 'DeviceCustomNumber1Label', type: 'string' }
  { name: 'DeviceCustomNumber2', type: 'int' }
  { name: 'DeviceCustomNumber2Label', type: 'string' }
  { name: 'DeviceCustomNumber3', type: 'int' }
  { name: 'DeviceCustomNumber3Label', type: 'string' }
  { name: 'DeviceCustomString1', type: 'string' }
  { name: 'DeviceCustomString1Label', type: 'string' }
  { name: 'DeviceCustomString2', type: 'string' }
  { name: 'DeviceCustomString2Label', type: 'string' }
  { name: 'DeviceCustomString3', type: 'string' }
  { name: 'DeviceCustomString3Label', type: 'string' }
  { name: 'DeviceCustomString4', type: 'string' }
  { name: 'DeviceCustomString4Label', type: 'string' }
  { name: 'DeviceCustomString5', type: 'string' }
  { name: 'DeviceCustomString5Label', type: 'string' }
  { name: 'DeviceCustomString6', type: 'string' }
  { name: 'DeviceCustomString6Label', type: 'string' }
  { name: 'DeviceDnsDomain', type: 'string' }
  { name: 'DeviceEventCategory', type: 'string' }
  { name: 'DeviceEventClassID', type: 'string' }
  { name: 'DeviceExternalID', type: 'string' }
  { name: 'DeviceFacility', type: 'string' }
  { name: 'DeviceInboundInterface', type: 'string' }
  { name: 'DeviceMacAddress', type: 'string' }
  { name: 'DeviceName', type: 'string' }
  { name: 'DeviceNtDomain', type: 'string' }
  { name: 'DeviceOutboundInterface', type: 'string' }
  { name: 'DevicePayloadId', type: 'string' }
  { name: 'DeviceProduct', type: 'string' }
  { name: 'DeviceTimeZone', type: 'string' }
  { name: 'DeviceTranslatedAddress', type: 'string' }
  { name: 'DeviceVendor', type: 'string' }
  { name: 'DeviceVersion', type: 'string' }
  { name: 'EndTime', type: 'datetime' }
  { name: 'EventCount', type: 'int' }
  { name: 'EventOutcome', type: 'string' }
  { name: 'EventType', type: 'int' }
  { name: 'ExternalID', type: 'int' }
  { name: 'ExtID', type: 'string' }
  { name: 'FieldDeviceCustomNumber1', type: 'long' }
  { name: 'FieldDeviceCustomNumber2', type: 'long' }
  { name: 'FieldDeviceCustomNumber3', type: 'long' }
  { name: 'FileCreateTime', type: 'string' }
  { name: 'FileHash', type: 'string' }
  { name: 'FileID', type: 'string' }
  { name: 'FileModificationTime', type: 'string' }
  { name: 'FileName', type: 'string' }
  { name: 'FilePath', type: 'string' }
  { name: 'FilePermission', type: 'string' }
  { name: 'FileSize', type: 'int' }
  { name: 'FileType', type: 'string' }
  { name: 'FlexDate1', type: 'string' }
  { name: 'FlexDate1Label', type: 'string' }
  { name: 'FlexNumber1', type: 'int' }
  { name: 'FlexNumber1Label', type: 'string' }
  { name: 'FlexNumber2', type: 'int' }
  { name: 'FlexNumber2Label', type: 'string' }
  { name: 'FlexString1', type: 'string' }
  { name: 'FlexString1Label', type: 'string' }
  { name: 'FlexString2', type: 'string' }
  { name: 'FlexString2Label', type: 'string' }
  { name: 'IndicatorThreatType', type: 'string' }
  { name: 'LogSeverity', type: 'string' }
  { name: 'MaliciousIP', type: 'string' }
  { name: 'MaliciousIPCountry', type: 'string' }
  { name: 'MaliciousIPLatitude', type: 'real' }
  { name: 'MaliciousIPLongitude', type: 'real' }
  { name: 'Message', type: 'string' }
  { name: 'OldFileCreateTime', type: 'string' }
  { name: 'OldFileHash', type: 'string' }
  { name: 'OldFileID', type: 'string' }
  { name: 'OldFileModificationTime', type: 'string' }
  { name: 'OldFileName', type: 'string' }
  { name: 'OldFilePath', type: 'string' }
  { name: 'OldFilePermission', type: 'string' }
  { name: 'OldFileSize', type: 'int' }
  { name: 'OldFileType', type: 'string' }
  { name: 'OriginalLogSeverity', type: 'string' }
  { name: 'ProcessID', type: 'int' }
  { name: 'ProcessName', type: 'string' }
  { name: 'Protocol', type: 'string' }
  { name: 'Reason', type: 'string' }
  { name: 'ReceiptTime', type: 'string' }
  { name: 'ReceivedBytes', type: 'long' }
  { name: 'RemoteIP', type: 'string' }
  { name: 'RemotePort', type: 'string' }
  { name: 'ReportReferenceLink', type: 'string' }
  { name: 'RequestClientApplication', type: 'string' }
  { name: 'RequestContext', type: 'string' }
  { name: 'RequestCookies', type: 'string' }
  { name: 'RequestMethod', type: 'string' }
  { name: 'RequestURL', type: 'string' }
  { name: 'SentBytes', type: 'long' }
  { name: 'SimplifiedDeviceAction', type: 'string' }
  { name: 'SourceDnsDomain', type: 'string' }
  { name: 'SourceHostName', type: 'string' }
  { name: 'SourceIP', type: 'string' }
  { name: 'SourceMACAddress', type: 'string' }
  { name: 'SourceNTDomain', type: 'string' }
  { name: 'SourcePort', type: 'int' }
  { name: 'SourceProcessId', type: 'int' }
  { name: 'SourceProcessName', type: 'string' }
  { name: 'SourceServiceName', type: 'string' }
  { name: 'SourceSystem', type: 'string' }
  { name: 'SourceTranslatedAddress', type: 'string' }
  { name: 'SourceTranslatedPort', type: 'int' }
  { name: 'SourceUserID', type: 'string' }
  { name: 'SourceUserName', type: 'string' }
  { name: 'SourceUserPrivileges', type: 'string' }
  { name: 'StartTime', type: 'datetime' }
  { name: 'ThreatConfidence', type: 'string' }
  { name: 'ThreatDescription', type: 'string' }
  { name: 'ThreatSeverity', type: 'int' }
  { name: 'TimeGenerated', type: 'datetime' }
]

// Every Syslog column cefd may send (engine/row/columns.h: the columns in_table() gives
// Table::syslog), typed as the Syslog table is. The Logs Ingestion API takes data only on a
// declared stream, and declared names start with Custom-: rows enter as Custom-Syslog and the
// data flow below maps them to Microsoft-Syslog.
var syslogColumns = [
  { name: 'CollectorHostName', type: 'string' }
  { name: 'Computer', type: 'string' }
  { name: 'EventTime', type: 'datetime' }
  { name: 'Facility', type: 'string' }
  { name: 'HostIP', type: 'string' }
  { name: 'HostName', type: 'string' }
  { name: 'ProcessID', type: 'int' }
  { name: 'ProcessName', type: 'string' }
  { name: 'SeverityLevel', type: 'string' }
  { name: 'SourceSystem', type: 'string' }
  { name: 'SyslogMessage', type: 'string' }
  { name: 'TimeGenerated', type: 'datetime' }
]

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${namePrefix}-collector'
  location: location
}

resource dce 'Microsoft.Insights/dataCollectionEndpoints@2022-06-01' = {
  name: '${namePrefix}-dce'
  location: location
  properties: {
    networkAcls: {
      publicNetworkAccess: 'Enabled'
    }
  }
}

resource dcr 'Microsoft.Insights/dataCollectionRules@2022-06-01' = {
  name: '${namePrefix}-dcr'
  location: location
  properties: {
    dataCollectionEndpointId: dce.id
    streamDeclarations: {
      'Custom-CommonSecurityLog': {
        columns: commonSecurityLogColumns
      }
      'Custom-Syslog': {
        columns: syslogColumns
      }
    }
    destinations: {
      logAnalytics: [
        {
          name: 'sentinel'
          workspaceResourceId: workspaceResourceId
        }
      ]
    }
    dataFlows: [
      {
        streams: [ 'Custom-CommonSecurityLog' ]
        destinations: [ 'sentinel' ]
        transformKql: 'source'
        outputStream: 'Microsoft-CommonSecurityLog'
      }
      {
        streams: [ 'Custom-Syslog' ]
        destinations: [ 'sentinel' ]
        transformKql: 'source'
        outputStream: 'Microsoft-Syslog'
      }
    ]
  }
}

resource collectorPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(dcr.id, identity.id, monitoringMetricsPublisher)
  scope: dcr
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource extraPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(extraPrincipalId)) {
  name: guid(dcr.id, extraPrincipalId, monitoringMetricsPublisher)
  scope: dcr
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: extraPrincipalId
    principalType: 'ServicePrincipal'
  }
}

@description('[azure] endpoint')
output logsIngestionEndpoint string = dce.properties.logsIngestion.endpoint
@description('[azure] dcr_id')
output dcrImmutableId string = dcr.properties.immutableId
@description('[azure] stream')
output stream string = 'Custom-CommonSecurityLog'
@description('[azure] client_id, with auth = "managed_identity"')
output identityClientId string = identity.properties.clientId
@description('The identity to assign to collector VMs (vmss.bicep identityResourceId)')
output identityResourceId string = identity.id
