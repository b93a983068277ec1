// Package deploy holds the files docker-compose.yml mounts into the demo
// stack: the configuration of the exporters, the coordinator, Prometheus
// and Grafana's provisioning. Its tests check docker-compose.yml, these
// files, the Dockerfile and the dashboards against each other and against
// the programs that read them.
package deploy
