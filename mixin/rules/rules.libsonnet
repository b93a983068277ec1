// Recording rules of vantage (rules/recording.rules.yml). Names follow
// level:metric:operations, the level naming the labels kept. Only series
// that a rule reads are recorded; their cost is written beside each one
// and summed up in mixin/README.md.
{
  local c = $._config,

  prometheusRules+:: {
    groups+: [
      {
        name: 'vantage-recording',
        rules: [
          // Share of the scheduled checks that failed, per target and
          // location, over failureRatioWindow (NaN when none ran). Cost:
          // one series per target and location.
          {
            record: 'target_location:vantage_probe_check_failures_per_checks:ratio_rate%(failureRatioWindow)s' % c,
            expr: |||
              sum without (result) (rate(vantage_probe_checks_total{%(exporterSelector)s, result="failure"}[%(failureRatioWindow)s]))
              /
              sum without (result) (rate(vantage_probe_checks_total{%(exporterSelector)s}[%(failureRatioWindow)s]))
            ||| % c,
          },
          // Fleet-wide counts the Overview dashboard draws over time: a
          // range query over every target's series would load one sample
          // per series and step, 300M at 100k targets from 3 locations,
          // beyond Prometheus' 50M query.max-samples. Cost: a few series
          // per location (per state, per failure reason).
          {
            record: 'location:vantage_targets_failing:sum',
            expr: 'sum by (job, location) (1 - probe_success{%(exporterSelector)s})' % c,
          },
          {
            record: 'location:vantage_targets:count',
            expr: 'count by (job, location) (probe_success{%(exporterSelector)s})' % c,
          },
          {
            record: 'location:vantage_probe_check_failures:rate5m',
            expr: 'sum by (job, location) (rate(vantage_probe_checks_total{%(exporterSelector)s, result="failure"}[5m]))' % c,
          },
          {
            record: 'location_reason:probe_failure_info:count',
            expr: 'count by (job, location, reason) (probe_failure_info{%(exporterSelector)s})' % c,
          },
          {
            record: 'state:vantage_target_state:count',
            expr: 'count by (job, state) (max without (instance) (vantage_target_state{%(coordinatorSelector)s}) == 1)' % c,
          },
          // Earliest certificate expiry of a target across all locations
          // (unix seconds); locations may be served different
          // certificates. Cost: one series per TLS target.
          {
            record: 'target:probe_ssl_earliest_cert_expiry:min',
            expr: 'min without (instance, location) (probe_ssl_earliest_cert_expiry{%(exporterSelector)s})' % c,
          },
        ],
      },
    ],
  },
}
