// Settings of the vantage mixin. Override any of them with
//   (import 'mixin.libsonnet') + { _config+:: { exporterSelector: 'job="probes"' } }
{
  _config+:: {
    // Selectors of the exporters' and the coordinators' scrape jobs. The
    // defaults match the scrape configuration in README.md and in
    // deploy/prometheus.yml.
    exporterSelector: 'job="vantage-exporter"',
    coordinatorSelector: 'job="vantage-coordinator"',

    // Severities: only a confirmed outage and "no coordinator up" are
    // critical (routed to the pager by common Alertmanager trees).
    severities: {
      critical: 'critical',
      warning: 'warning',
      info: 'info',
    },

    // Thresholds.
    failureRatioWindow: '15m',  // window of the failed-checks ratio
    failureRatioThreshold: 0.25,  // share of failed checks that raises TargetFailureRatioHigh
    failureThresholdWindow: '5m',  // window of a target's failure_threshold: more failed checks in it raise TargetFailureRatioHigh
    slowTTFBSeconds: 1,  // average time to first byte over 10m that raises SlowTimeToFirstByte

    // Where the runbooks and the dashboards live; alerts link to them in
    // their runbook_url and dashboard_url annotations.
    runbookURLBase: 'https://github.com/vantageprobe/vantage/blob/main/rules/README.md#',
    grafanaURL: 'http://localhost:3000',

    // Dashboards: their tag, and the selector of the exporters panels use
    // (the $job variable, whose values come from exporterSelector).
    dashboardTags: ['vantage'],
    exporterDashboardSelector: 'job=~"$job"',
    // up of the exporters, with the location each exporter exposes on its
    // own series (an exporter that cannot be scraped keeps the location it
    // had in the last hour).
    exporterUp: 'up{%(exporterDashboardSelector)s} * on (job, instance) group_left (location) max by (job, instance, location) (last_over_time(vantage_exporter_build_info{%(exporterDashboardSelector)s, location=~"$location"}[1h]))' % self,
  },
}
