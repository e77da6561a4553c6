// deploy/azure/vmss.bicep: a fleet of cefd collectors behind an Azure internal load balancer on
// UDP and TCP 514, for sources that outgrow one VM. vmss.json is the same template in ARM JSON,
// written by hand (tests/deploy/azure_templates_test.cpp checks that the two agree, and that the
// cloud-init text embedded in vmss.json is cloud-init.yaml). Why these choices: deploy/README.md.
//
//   az deployment group create -g <rg> -f deploy/azure/vmss.bicep -p subnetId=... sshPublicKey=... \
//     identityResourceId=... identityClientId=... logsIngestionEndpoint=... dcrImmutableId=... packageUrl=...
// Point Darktrace (and every other source) at the output syslogAddress, port 514.

@description('Region of the collectors: that of the subnet.')
param location string = resourceGroup().location

@description('Prefix of every resource name.')
param namePrefix string = 'cefd'

@description('Resource id of the subnet the senders reach (the load balancer frontend and the collectors live there). It needs outbound HTTPS to Azure Monitor (NAT gateway or firewall).')
param subnetId string

@description('Collectors to start with.')
@minValue(1)
@maxValue(100)
param instanceCount int = 2

@description('VM size of each collector; size it with cefd-loadgen (bench/README.md).')
param vmSize string = 'Standard_D4s_v5'

@description('Administrator on each collector (SSH key only).')
param adminUsername string = 'cefdadmin'

@description('SSH public key of that administrator.')
param sshPublicKey string

@description('The user-assigned identity of the collectors: collector.bicep output identityResourceId.')
param identityResourceId string

@description('Its client id: collector.bicep output identityClientId.')
param identityClientId string

@description('collector.bicep output logsIngestionEndpoint.')
param logsIngestionEndpoint string

@description('collector.bicep output dcrImmutableId.')
param dcrImmutableId string

@description('HTTPS URL of the cefd .deb (scripts/package) the collectors download at first boot.')
param packageUrl string

var lbName = '${namePrefix}-syslog-lb'
// The package's config with this deployment's values: cloud-init.yaml's @...@ placeholders.
var cloudInit = replace(replace(replace(replace(loadTextContent('cloud-init.yaml'), '@ENDPOINT@', logsIngestionEndpoint), '@DCR_ID@', dcrImmutableId), '@CLIENT_ID@', identityClientId), '@PACKAGE_URL@', packageUrl)

resource lb 'Microsoft.Network/loadBalancers@2023-09-01' = {
  name: lbName
  location: location
  sku: {
    name: 'Standard'
  }
  properties: {
    frontendIPConfigurations: [
      {
        name: 'syslog'
        properties: {
          subnet: {
            id: subnetId
          }
          privateIPAllocationMethod: 'Dynamic'
        }
      }
    ]
    backendAddressPools: [
      {
        name: 'collectors'
      }
    ]
    probes: [
      {
        // cefd's TCP listener answers when the process runs; UDP cannot be probed.
        name: 'syslog-tcp'
        properties: {
          protocol: 'Tcp'
          port: 514
          intervalInSeconds: 5
          probeThreshold: 2
        }
      }
    ]
    loadBalancingRules: [
      {
        // SourceIP: every datagram of one sender goes to the same collector, so its dedupe
        // window and its order hold (deploy/README.md).
        name: 'syslog-udp'
        properties: {
          frontendIPConfiguration: {
            id: resourceId('Microsoft.Network/loadBalancers/frontendIPConfigurations', lbName, 'syslog')
          }
          backendAddressPool: {
            id: resourceId('Microsoft.Network/loadBalancers/backendAddressPools', lbName, 'collectors')
          }
          probe: {
            id: resourceId('Microsoft.Network/loadBalancers/probes', lbName, 'syslog-tcp')
          }
          protocol: 'Udp'
          frontendPort: 514
          backendPort: 514
          loadDistribution: 'SourceIP'
          enableFloatingIP: false
          idleTimeoutInMinutes: 4
        }
      }
      {
        name: 'syslog-tcp'
        properties: {
          frontendIPConfiguration: {
            id: resourceId('Microsoft.Network/loadBalancers/frontendIPConfigurations', lbName, 'syslog')
          }
          backendAddressPool: {
            id: resourceId('Microsoft.Network/loadBalancers/backendAddressPools', lbName, 'collectors')
          }
          probe: {
            id: resourceId('Microsoft.Network/loadBalancers/probes', lbName, 'syslog-tcp')
          }
          protocol: 'Tcp'
          frontendPort: 514
          backendPort: 514
          loadDistribution: 'SourceIP'
          enableFloatingIP: false
          enableTcpReset: true
          idleTimeoutInMinutes: 30
        }
      }
    ]
  }
}

resource vmss 'Microsoft.Compute/virtualMachineScaleSets@2023-09-01' = {
  name: '${namePrefix}-collectors'
  location: location
  sku: {
    name: vmSize
    capacity: instanceCount
  }
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityResourceId}': {}
    }
  }
  properties: {
    orchestrationMode: 'Uniform'
    overprovision: false
    upgradePolicy: {
      mode: 'Manual'
    }
    // Scale-in removes the newest collector first and gives it 10 minutes' notice (scheduled
    // events) to drain its spool: see deploy/README.md.
    scaleInPolicy: {
      rules: [ 'NewestVM' ]
    }
    virtualMachineProfile: {
      scheduledEventsProfile: {
        terminateNotificationProfile: {
          enable: true
          notBeforeTimeout: 'PT10M'
        }
      }
      osProfile: {
        computerNamePrefix: namePrefix
        adminUsername: adminUsername
        customData: base64(cloudInit)
        linuxConfiguration: {
          disablePasswordAuthentication: true
          ssh: {
            publicKeys: [
              {
                path: '/home/${adminUsername}/.ssh/authorized_keys'
                keyData: sshPublicKey
              }
            ]
          }
        }
      }
      storageProfile: {
        imageReference: {
          publisher: 'Debian'
          offer: 'debian-12'
          sku: '12-gen2'
          version: 'latest'
        }
        osDisk: {
          createOption: 'FromImage'
          managedDisk: {
            storageAccountType: 'Premium_LRS'
          }
        }
      }
      networkProfile: {
        networkInterfaceConfigurations: [
          {
            name: 'nic'
            properties: {
              primary: true
              ipConfigurations: [
                {
                  name: 'ipconfig'
                  properties: {
                    subnet: {
                      id: subnetId
                    }
                    loadBalancerBackendAddressPools: [
                      {
                        id: resourceId('Microsoft.Network/loadBalancers/backendAddressPools', lbName, 'collectors')
                      }
                    ]
                  }
                }
              ]
            }
          }
        ]
      }
    }
  }
  dependsOn: [
    lb
  ]
}

@description('Where senders send syslog: UDP or TCP, port 514.')
output syslogAddress string = lb.properties.frontendIPConfigurations[0].properties.privateIPAddress
