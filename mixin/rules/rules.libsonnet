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
      // Uptime as the coordinator confirms it: the share of the last day,
      // week and 30 days a target was not confirmed down, outside
      // maintenance windows. Unknown verdicts and failures never confirmed
      // (one location alone, false alarms) do not count against it.
      // Sampled at the evaluation interval; the coordinator's
      // GET /api/v1/targets/{target}/uptime computes the same from the
      // incident log to the second. Cost: four series per target.
      {
        name: 'vantage-uptime',
        rules: [
          // 1 while the target is confirmed down outside a maintenance
          // window, else 0; one series per target for an HA pair.
          {
            record: 'target:vantage_target_down_unplanned:max',
            expr: |||
              (
                max by (target, module) (vantage_target_confirmed_down{%(coordinatorSelector)s})
                unless on (target, module)
                (max by (target, module) (vantage_target_maintenance{%(coordinatorSelector)s}) == 1)
              )
              or on (target, module)
              0 * max by (target, module) (vantage_target_confirmed_down{%(coordinatorSelector)s})
            ||| % c,
          },
        ] + [
          {
            record: 'target:vantage_target_uptime:ratio',
            labels: { range: range },
            expr: '1 - avg_over_time(target:vantage_target_down_unplanned:max[%s])' % range,
          }
          for range in ['1d', '7d', '30d']
        ],
      },
    ],
  },
}
