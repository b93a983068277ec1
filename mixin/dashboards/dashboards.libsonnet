// Grafana dashboards of vantage (dashboards/*.json). The panels live in
// the JSON files beside this one; their queries name the scrape jobs
// through %(…)s placeholders that _config fills, and every dashboard gets
// the $job variable (the exporter jobs exporterSelector matches).
{
  local c = $._config,

  // withConfig fills the placeholders of every query (panel targets,
  // annotations, variables) from _config.
  local withConfig(x) =
    if std.isObject(x) then {
      [k]: if std.member(['expr', 'definition', 'query'], k) && std.isString(x[k]) then x[k] % c else withConfig(x[k])
      for k in std.objectFields(x)
    }
    else if std.isArray(x) then [withConfig(e) for e in x]
    else x,

  local jobVariable = {
    name: 'job',
    label: 'Exporter job',
    type: 'query',
    datasource: { type: 'prometheus', uid: '${datasource}' },
    definition: 'label_values(vantage_exporter_build_info{%(exporterSelector)s}, job)',
    query: {
      query: 'label_values(vantage_exporter_build_info{%(exporterSelector)s}, job)',
      refId: 'PrometheusVariableQueryEditor-VariableQuery',
      qryType: 1,
    },
    refresh: 2,
    regex: '',
    sort: 1,
    hide: 0,
    options: [],
    current: {},
    includeAll: true,
    multi: true,
    allValue: '.+',
    skipUrlSync: false,
  },

  // dashboard adds the $job variable after the data source and fills the
  // queries.
  local dashboard(d) = withConfig(d {
    tags: c.dashboardTags,
    templating+: {
      list: [d.templating.list[0], jobVariable] + d.templating.list[1:],
    },
  }),

  grafanaDashboards+:: {
    'vantage-overview.json': dashboard(import 'vantage-overview.json'),
    'vantage-target.json': dashboard(import 'vantage-target.json'),
    'vantage-fleet.json': dashboard(import 'vantage-fleet.json'),
  },
}
