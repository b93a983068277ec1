// The vantage monitoring mixin: alerts, recording rules and dashboards,
// configured by config.libsonnet. `make mixin` renders it into rules/ and
// dashboards/.
(import 'config.libsonnet') +
(import 'alerts/alerts.libsonnet') +
(import 'rules/rules.libsonnet') +
(import 'dashboards/dashboards.libsonnet')
