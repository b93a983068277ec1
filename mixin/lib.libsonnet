// Helpers the alerts, rules and dashboards of the mixin share.
{
  // annotations every alert carries: its summary and description, the
  // runbook (a section of rules/README.md, named after the alert) and the
  // dashboard that shows what the description cannot.
  annotations(c, alert, summary, description, dashboard):: {
    summary: summary,
    description: description,
    runbook_url: c.runbookURLBase + std.asciiLower(alert),
    dashboard_url: dashboard,
  },

  // Links to the dashboards, filled from the alert's labels.
  targetDashboard(c):: '%(grafanaURL)s/d/vantage-target/vantage-target?var-target={{ $labels.target | urlquery }}' % c,
  fleetDashboard(c):: '%(grafanaURL)s/d/vantage-fleet/vantage-fleet{{ with $labels.location }}?var-location={{ . | urlquery }}{{ end }}' % c,
  overviewDashboard(c):: '%(grafanaURL)s/d/vantage-overview/vantage-overview' % c,

  // certificateAlert fires while the earliest expiring certificate a target
  // presents to any location expires in [below, days) days; below null is
  // everything under days, expired included.
  certificateAlert(c, days, below, severity, dashboard):: {
    local name = 'CertificateExpiresIn%dDays' % days,
    local expiry = 'target:probe_ssl_earliest_cert_expiry:min',
    alert: name,
    expr: if below == null then
      '%s < time() + %d * 86400' % [expiry, days]
    else
      '%s < time() + %d * 86400\nand\n%s >= time() + %d * 86400\n' % [expiry, days, expiry, below],
    'for': '15m',
    labels: { severity: severity },
    annotations: $.annotations(
      c,
      name,
      'Certificate of {{ $labels.target }} expires in less than %d days' % days,
      'The earliest expiring certificate {{ $labels.target }} (module {{ $labels.module }}) presents to any location expires%s at {{ $value | humanizeTimestamp }}.' % (if below == null then ' (or expired)' else ''),
      dashboard,
    ),
  },
}
