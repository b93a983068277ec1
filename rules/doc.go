// Package rules holds no Go code: it is the home of vantage's Prometheus
// recording and alerting rules (*.rules.yml) and their promtool unit tests
// (tests/*.test.yml). Its Go tests run promtool and amtool on them and on
// deploy/alertmanager.yml, and guard the routing contract between the two:
// only TargetConfirmedDown and NoCoordinatorUp page.
package rules
