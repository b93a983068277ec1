// Alerting rules of vantage (rules/alerts.rules.yml).
//
// Routing contract (deploy/alertmanager.yml, guarded by rules/rules_test.go):
// only TargetConfirmedDown, an outage the coordinator confirmed from several
// locations, and NoCoordinatorUp, when no coordinator runs to confirm one,
// are critical. Every alert has summary, description, runbook_url and
// dashboard_url; annotations never run queries (one query per firing alert
// per evaluation does not scale to a location outage at 100k targets): what
// a template cannot tell from the alert's own labels and value, the linked
// dashboard shows.
local lib = import '../lib.libsonnet';

{
  local c = $._config,
  local sev = c.severities,
  local ann(alert, summary, description, dashboard) = lib.annotations(c, alert, summary, description, dashboard),
  local targetDashboard = lib.targetDashboard(c),
  local fleetDashboard = lib.fleetDashboard(c),
  local overviewDashboard = lib.overviewDashboard(c),

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'vantage-targets',
        rules: [
          // One alert per outage, held through failed scrapes:
          // last_over_time(…[2m]) is the last value each coordinator
          // exposed in the last 2 minutes (range selectors skip stale
          // markers), and max without (instance) makes the coordinators of
          // an HA pair one alert.
          {
            alert: 'TargetConfirmedDown',
            // An outage confirmed before a maintenance window began stays
            // confirmed; the window silences it.
            expr: |||
              max without (instance) (last_over_time(vantage_target_confirmed_down{%(coordinatorSelector)s}[2m])) == 1
              unless on (target, module) (max by (target, module) (vantage_target_maintenance{%(coordinatorSelector)s}) == 1)
            ||| % c,
            labels: { severity: sev.critical },
            annotations: ann(
              'TargetConfirmedDown',
              '{{ $labels.target }} ({{ $labels.module }}) is down, confirmed from several locations',
              'The coordinator confirmed that {{ $labels.target }} (module {{ $labels.module }}) is down: enough locations see it failing. The target dashboard shows since when, and which locations fail it.',
              targetDashboard,
            ),
          },
          {
            alert: 'TargetSeemsDown',
            expr: 'max without (instance) (vantage_target_state{%(coordinatorSelector)s, state="seems_down"}) == 1' % c,
            'for': '5m',
            labels: { severity: sev.warning },
            annotations: ann(
              'TargetSeemsDown',
              '{{ $labels.target }} ({{ $labels.module }}) has been seems_down for 5 minutes without a verdict',
              'A location reported {{ $labels.target }} (module {{ $labels.module }}) failing and the coordinator has neither confirmed nor dismissed it for 5 minutes: the verification is stuck (locations not answering the coordinator) or the target flaps.',
              targetDashboard,
            ),
          },
          {
            alert: 'TargetUnknown',
            expr: 'min without (instance) (vantage_target_state{%(coordinatorSelector)s, state="unknown"}) == 1' % c,
            'for': '10m',
            labels: { severity: sev.warning },
            annotations: ann(
              'TargetUnknown',
              'Monitoring is blind for {{ $labels.target }} ({{ $labels.module }})',
              'Every coordinator has held {{ $labels.target }} (module {{ $labels.module }}) unknown for 10 minutes: too few locations give a usable result (exporter errors, failing canaries), so an outage of this target would not page.',
              targetDashboard,
            ),
          },
          {
            alert: 'TargetFlapping',
            expr: 'max without (instance) (vantage_target_flapping{%(coordinatorSelector)s}) == 1' % c,
            'for': '10m',
            labels: { severity: sev.info },
            annotations: ann(
              'TargetFlapping',
              '{{ $labels.target }} ({{ $labels.module }}) flaps',
              'The coordinator has seen {{ $labels.target }} (module {{ $labels.module }}) change between failing and up again and again for 10 minutes. Its outages may not be confirmed, or confirmed and recovered repeatedly.',
              targetDashboard,
            ),
          },
          {
            alert: 'TargetFailingFromLocation',
            expr: |||
              probe_success{%(exporterSelector)s} == 0
              unless on (target, module) (max by (target, module) (vantage_target_maintenance{%(coordinatorSelector)s}) == 1)
            ||| % c,
            'for': '15m',
            labels: { severity: sev.info },
            annotations: ann(
              'TargetFailingFromLocation',
              '{{ $labels.target }} ({{ $labels.module }}) has been failing from {{ $labels.location }} for 15 minutes',
              'Every check of {{ $labels.target }} (module {{ $labels.module }}) from location {{ $labels.location }} ({{ $labels.instance }}) failed for 15 minutes. The other locations do not confirm it, or TargetConfirmedDown would fire instead.',
              targetDashboard,
            ),
          },
          {
            alert: 'TargetFailureRatioHigh',
            // A target without a failure_threshold label fires on the
            // share of its failed checks; one with the label fires when
            // more of its checks than the threshold failed in
            // failureThresholdWindow, whatever their share. Both read the
            // share as the value.
            expr: |||
              (
                (
                  target_location:vantage_probe_check_failures_per_checks:ratio_rate%(failureRatioWindow)s > %(failureRatioThreshold)g
                  unless
                  vantage_probe_failure_threshold{%(exporterSelector)s}
                )
                or
                (
                  target_location:vantage_probe_check_failures_per_checks:ratio_rate%(failureRatioWindow)s
                  and
                  sum without (result) (increase(vantage_probe_checks_total{%(exporterSelector)s, result="failure"}[%(failureThresholdWindow)s])) > vantage_probe_failure_threshold{%(exporterSelector)s}
                )
              )
              unless on (target, module)
              (max by (target, module) (vantage_target_maintenance{%(coordinatorSelector)s}) == 1)
            ||| % c,
            labels: { severity: sev.info },
            annotations: ann(
              'TargetFailureRatioHigh',
              '{{ $labels.target }} ({{ $labels.module }}) fails {{ $value | humanizePercentage }} of its checks from {{ $labels.location }}',
              ('{{ $value | humanizePercentage }} of the checks of {{ $labels.target }} (module {{ $labels.module }}) from location {{ $labels.location }} failed in the last %(failureRatioWindow)s{{ with $labels.failure_threshold }}, and more than {{ . }} (its failure_threshold) in the last %(failureThresholdWindow)s{{ else }}, more than %(failureRatioThreshold)g{{ end }}.' % c),
              targetDashboard,
            ),
          },
          {
            alert: 'SlowTimeToFirstByte',
            expr: 'max without (phase) (avg_over_time(probe_http_duration_seconds{%(exporterSelector)s, phase="processing"}[10m])) > %(slowTTFBSeconds)g' % c,
            'for': '5m',
            labels: { severity: sev.info },
            annotations: ann(
              'SlowTimeToFirstByte',
              '{{ $labels.target }} ({{ $labels.module }}) answers slowly from {{ $labels.location }}',
              ('The time to first byte of {{ $labels.target }} (module {{ $labels.module }}) from location {{ $labels.location }} averaged {{ $value | humanizeDuration }} over 10 minutes (threshold %(slowTTFBSeconds)gs).' % c),
              targetDashboard,
            ),
          },
        ],
      },
      {
        name: 'vantage-certificates',
        // The three bands do not overlap: a certificate has at most one of
        // these alerts at a time. The value is the expiry time.
        rules: [
          lib.certificateAlert(c, 30, 14, sev.info, targetDashboard),
          lib.certificateAlert(c, 14, 7, sev.warning, targetDashboard),
          lib.certificateAlert(c, 7, null, sev.warning, targetDashboard),
        ],
      },
      {
        name: 'vantage-monitoring',
        rules: [
          // LocationDown has one rule per signal; the cause label keeps
          // their alerts apart. An exporter that cannot be scraped has no
          // series of its own: its location comes from the build
          // information it exposed in the last hour (or is missing).
          {
            alert: 'LocationDown',
            expr: |||
              (up{%(exporterSelector)s} == 0) * on (job, instance) group_left (location) topk by (job, instance) (1, last_over_time(vantage_exporter_build_info{%(exporterSelector)s}[1h]))
              or on (job, instance)
              up{%(exporterSelector)s} == 0
            ||| % c,
            'for': '2m',
            labels: { severity: sev.warning, cause: 'exporter_unreachable' },
            annotations: ann(
              'LocationDown',
              'Location {{ with $labels.location }}{{ . }}{{ else }}of {{ $labels.instance }}{{ end }} is down: Prometheus cannot scrape its exporter',
              'Prometheus has failed to scrape the exporter {{ $labels.instance }}{{ with $labels.location }} of location {{ . }}{{ end }} for 2 minutes. The location\'s checks are not visible; its per-target alerts are inhibited meanwhile.' % c,
              fleetDashboard,
            ),
          },
          {
            alert: 'LocationDown',
            expr: 'vantage_location_healthy{%(coordinatorSelector)s} == 0' % c,
            'for': '2m',
            labels: { severity: sev.warning, cause: 'coordinator_unhealthy' },
            annotations: ann(
              'LocationDown',
              'Location {{ $labels.location }} is down: the coordinator holds it unhealthy',
              'The coordinator has held location {{ $labels.location }} unhealthy for 2 minutes (it does not answer verification requests or its canary fails); its results count as unknown and it cannot help confirm outages. Its per-target alerts are inhibited meanwhile.' % c,
              fleetDashboard,
            ),
          },
          {
            alert: 'LocationDown',
            expr: 'vantage_exporter_canary_success{%(exporterSelector)s} == 0' % c,
            'for': '5m',
            labels: { severity: sev.warning, cause: 'canary_failing' },
            annotations: ann(
              'LocationDown',
              'Location {{ $labels.location }} is down: its connectivity canary fails',
              "The connectivity canary of location {{ $labels.location }} ({{ $labels.instance }}) has failed for 5 minutes: the location's own network is broken, so its failures are reported as unknown. Its per-target alerts are inhibited meanwhile.",
              fleetDashboard,
            ),
          },
          {
            alert: 'LocationSuspect',
            expr: 'max without (instance) (vantage_location_suspect{%(coordinatorSelector)s}) == 1' % c,
            'for': '5m',
            labels: { severity: sev.warning },
            annotations: ann(
              'LocationSuspect',
              "The coordinator distrusts location {{ $labels.location }}'s failures ({{ $labels.reason }})",
              'For 5 minutes the coordinator has not trusted the failures location {{ $labels.location }} reports (reason {{ $labels.reason }}): they do not count towards confirming an outage, so outages have one location fewer to be confirmed by.',
              fleetDashboard,
            ),
          },
          {
            alert: 'ExporterDegraded',
            expr: 'vantage_exporter_degraded{%(exporterSelector)s} == 1' % c,
            'for': '5m',
            labels: { severity: sev.warning },
            annotations: ann(
              'ExporterDegraded',
              'Exporter {{ $labels.instance }} in {{ $labels.location }} does not trust its own results ({{ $labels.reason }})',
              'For 5 minutes the exporter {{ $labels.instance }} of location {{ $labels.location }} has judged its own results untrustworthy (reason {{ $labels.reason }}: {{ if eq $labels.reason "scheduler_lag" }}its checks start late{{ else if eq $labels.reason "missed_checks" }}it skips planned checks{{ else if eq $labels.reason "stale_results" }}its latest results are older than their interval{{ else }}see the runbook{{ end }}). Its per-target alerts are inhibited meanwhile.',
              fleetDashboard,
            ),
          },
          {
            alert: 'ExporterStalled',
            expr: 'vantage_exporter_clock_stalled{%(exporterSelector)s} == 1' % c,
            'for': '5m',
            labels: { severity: sev.warning },
            annotations: ann(
              'ExporterStalled',
              'Exporter {{ $labels.instance }} in {{ $labels.location }} is stalled ({{ $labels.clock }})',
              'For 5 minutes the {{ $labels.clock }} clock of the exporter {{ $labels.instance }} of location {{ $labels.location }} has not advanced although work is due: the process answers scrapes but does not do its job.',
              fleetDashboard,
            ),
          },
          // One coordinator that cannot be scraped is a warning: the other
          // of an HA pair still confirms outages. None up is critical.
          {
            alert: 'CoordinatorDown',
            expr: 'up{%(coordinatorSelector)s} == 0' % c,
            'for': '2m',
            labels: { severity: sev.warning },
            annotations: ann(
              'CoordinatorDown',
              'The vantage coordinator {{ $labels.instance }} is down',
              'Prometheus has not scraped the coordinator {{ $labels.instance }} for 2 minutes. The other coordinators of the job, if any is up, keep confirming outages; when none is, NoCoordinatorUp pages.' % c,
              fleetDashboard,
            ),
          },
          {
            alert: 'CoordinatorStalled',
            expr: 'vantage_coordinator_clock_stalled{%(coordinatorSelector)s} == 1' % c,
            'for': '5m',
            labels: { severity: sev.warning },
            annotations: ann(
              'CoordinatorStalled',
              'The vantage coordinator {{ $labels.instance }} is stalled ({{ $labels.clock }})',
              'For 5 minutes the {{ $labels.clock }} clock of the coordinator {{ $labels.instance }} has not advanced although work is due: it answers scrapes but may not confirm outages.',
              fleetDashboard,
            ),
          },
          {
            alert: 'NoCoordinatorUp',
            expr: 'max by (job) (up{%(coordinatorSelector)s}) == 0 or absent(up{%(coordinatorSelector)s})' % c,
            'for': '2m',
            labels: { severity: sev.critical },
            annotations: ann(
              'NoCoordinatorUp',
              'No vantage coordinator is up: outages cannot page',
              ('{{ if eq $value 0.0 }}Prometheus has scraped none of the coordinators of job {{ $labels.job }}{{ else }}Prometheus has no coordinator target{{ end }} for 2 minutes. No outage is confirmed while no coordinator runs: TargetConfirmedDown cannot fire, and open pages resolve.' % c),
              fleetDashboard,
            ),
          },
          {
            alert: 'SchedulerMissingChecks',
            expr: 'increase(vantage_scheduler_missed_checks_total{%(exporterSelector)s}[10m]) > 0' % c,
            'for': '15m',
            labels: { severity: sev.warning },
            annotations: ann(
              'SchedulerMissingChecks',
              'Exporter {{ $labels.instance }} in {{ $labels.location }} misses checks ({{ $labels.reason }})',
              'The exporter {{ $labels.instance }} of location {{ $labels.location }} skipped {{ $value | printf "%.0f" }} planned checks in the last 10 minutes, and has kept skipping for 15 minutes (reason {{ $labels.reason }}: {{ if eq $labels.reason "busy" }}a target\'s previous check with its retries outlasted its interval{{ else }}no concurrency slot was free before the next planned check{{ end }}).',
              fleetDashboard,
            ),
          },
          {
            alert: 'ReportsDropped',
            expr: 'increase(vantage_exporter_reports_dropped_total{%(exporterSelector)s}[10m]) > 0' % c,
            'for': '5m',
            labels: { severity: sev.warning },
            annotations: ann(
              'ReportsDropped',
              'Exporter {{ $labels.instance }} in {{ $labels.location }} drops reports to the coordinator',
              'The exporter {{ $labels.instance }} of location {{ $labels.location }} dropped {{ $value | printf "%.0f" }} failure reports for {{ $labels.coordinator }} in the last 10 minutes (reason {{ $labels.reason }}). Outages it sees reach the coordinator late or never.',
              fleetDashboard,
            ),
          },
          {
            alert: 'ConfigReloadFailed',
            expr: |||
              vantage_exporter_config_last_reload_successful{%(exporterSelector)s} == 0
              or
              vantage_coordinator_config_last_reload_successful{%(coordinatorSelector)s} == 0
            ||| % c,
            'for': '5m',
            labels: { severity: sev.warning },
            annotations: ann(
              'ConfigReloadFailed',
              '{{ $labels.job }} {{ $labels.instance }} failed to reload its configuration',
              'The last configuration reload of {{ $labels.job }} {{ $labels.instance }}{{ with $labels.location }} in location {{ . }}{{ end }} failed 5 minutes ago or more; it keeps running the previous configuration.',
              fleetDashboard,
            ),
          },
          // Each member of a location's cluster exposes the live members
          // it sees and, with cluster.expected_members set, the size the
          // location should have; the largest view counts (a partitioned
          // member sees only itself).
          {
            alert: 'LocationClusterBelowSize',
            expr: |||
              max by (job, location) (vantage_cluster_members{%(exporterSelector)s})
                < max by (job, location) (vantage_cluster_expected_members{%(exporterSelector)s} > 0)
            ||| % c,
            'for': '5m',
            labels: { severity: sev.warning },
            annotations: ann(
              'LocationClusterBelowSize',
              'Location {{ $labels.location }} runs below its expected number of exporters',
              'The cluster of location {{ $labels.location }} has had {{ $value | printf "%.0f" }} live members for 5 minutes, fewer than its cluster.expected_members. The members left check all its targets, at a higher load each, and one more failure leaves fewer still.',
              fleetDashboard,
            ),
          },
        ],
      },
      // Pushed events (heartbeats): an event is raised when its source
      // stopped speaking or raised it. The event's own severity label
      // sets the alert's: critical pages, info is informational, anything
      // else (or none) is a warning.
      {
        local event(severity, selector) = {
          alert: 'EventRaised',
          expr: 'max without (instance) (vantage_event_raised{%s, %s}) == 1' % [c.coordinatorSelector, selector],
          labels: { severity: severity },
          annotations: ann(
            'EventRaised',
            'Event {{ $labels.id }} of {{ $labels.source }} is raised',
            'The pushed event {{ $labels.id }} of source {{ $labels.source }} is raised: its source raised it, or stopped sending it before its raise time. The coordinator lists its subject and detail at /events.',
            overviewDashboard,
          ),
        },
        name: 'vantage-events',
        rules: [
          event(sev.critical, 'severity="critical"'),
          event(sev.info, 'severity="info"'),
          event(sev.warning, 'severity!~"critical|info"'),
        ],
      },
    ],
  },
}
