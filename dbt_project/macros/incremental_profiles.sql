{#- Per-profile incremental models (profiles, lifecycle_stage_history): a run recomputes only the
    profiles whose inputs changed, found by fingerprint, and keeps every other row.

    Each such model is a function, profile by profile, of some input rows (no row of one profile
    depends on another profile's rows). A cheap query (`fingerprint_sql`: profile_id and a per-row
    hash, see profile_row_hash) lists those input rows; grouped per profile into (input_rows,
    input_checksum = the sum of the hashes) it is compared with the fingerprints stored at the
    model's last run (`intermediate.<model>__inputs`). The profiles whose fingerprint differs, is
    new or vanished are the run's scope (temporary table `<model>__scope`); the model computes
    them (delete+insert on profile_id, a tombstone for a scoped profile without rows, which the
    post-hook deletes) and the post-hook stores their new fingerprints.

    What the input rows do not show is kept in `intermediate.<model>__inputs_state`: the as_of of
    the last run and the model's settings (a digest of its SQL and the vars it reads). A run whose
    settings differ (or without stored state: the first run after an upgrade, a dropped table)
    recomputes every profile and says so in the log. When as_of moved, `time_sql` adds the
    profiles whose rows depend on where as_of lies between the old and the new value; it is SQL
    selecting profile_id in which `{low}` and `{high}` stand for the earlier and the later of the
    two as_of values. -#}

{#- A hash of one input row (a list of column expressions), identical for identical values. -#}
{% macro profile_row_hash(columns) -%}{{ return(adapter.dispatch('profile_row_hash', 'lifeline')(columns)) }}{%- endmacro %}
{% macro duckdb__profile_row_hash(columns) -%}hash({{ columns | join(', ') }}){%- endmacro %}
{% macro default__profile_row_hash(columns) -%}
hashtextextended(concat_ws('|'{% for column in columns %}, coalesce(cast({{ column }} as {{ dbt.type_string() }}), '~null~'){% endfor %}), 0)
{%- endmacro %}

{#- Where a per-profile model keeps its fingerprints (`inputs`) and its last run (`inputs_state`). -#}
{% macro profile_inputs_relation(suffix='inputs') -%}
  {{ return(api.Relation.create(database=this.database, schema=generate_schema_name('intermediate', model),
                                identifier=this.identifier ~ '__' ~ suffix)) }}
{%- endmacro %}

{% macro profile_scope_table() -%}{{ return(this.identifier ~ '__scope') }}{%- endmacro %}
{% macro profile_fingerprint_table() -%}{{ return(this.identifier ~ '__fingerprints') }}{%- endmacro %}

{#- The settings digest of this model: its SQL and the vars it names (a changed formula or
    threshold changes rows the inputs do not show). -#}
{% macro profile_settings(var_names) -%}
  {%- set parts = [model.raw_code] -%}
  {%- for name in var_names -%}{%- do parts.append(name ~ '=' ~ (var(name, none) | string)) -%}{%- endfor -%}
  {{ return(local_md5(parts | join('\n'))) }}
{%- endmacro %}

{#- What `intermediate.<model>__inputs_state` says of this model's last run: {'as_of': its as_of,
    'reason': none} when it was a run of the same settings (profile_settings), else 'reason' says
    why the run must recompute every profile (no state stored, the model or its vars changed). -#}
{% macro profile_state(var_names=[]) -%}
  {%- set state = lifeline.profile_inputs_relation('inputs_state') -%}
  {%- if adapter.get_relation(state.database, state.schema, state.identifier) is none -%}
    {{ return({'as_of': none, 'reason': 'no stored state (' ~ state.identifier ~ ')'}) }}
  {%- endif -%}
  {%- set last = run_query('select max(as_of), max(settings), count(*) from ' ~ state).rows[0] -%}
  {%- if (last[2] | int) != 1 or last[1] != lifeline.profile_settings(var_names) -%}
    {{ return({'as_of': none, 'reason': 'the model or its vars changed since the last run'}) }}
  {%- endif -%}
  {{ return({'as_of': lifeline.as_naive_datetime(last[0]), 'reason': none}) }}
{%- endmacro %}

{#- Builds `<model>__fingerprints` (current) and `<model>__scope` (the profiles to recompute) and
    returns the scope table to filter on, or none when the run computes every profile (a full
    build, or an incremental run that falls back to one: it then empties the model first). -#}
{% macro profile_scope(fingerprint_sql, label, var_names=[], time_sql=none) -%}
  {%- if not execute -%}{{ return(none) }}{%- endif -%}
  {%- set fingerprints = lifeline.profile_fingerprint_table() -%}
  {%- set scope = lifeline.profile_scope_table() -%}
  {%- set inputs = lifeline.profile_inputs_relation() -%}
  {%- set state = lifeline.profile_inputs_relation('inputs_state') -%}
  {%- do run_query('drop table if exists ' ~ fingerprints) -%}
  {%- do run_query('drop table if exists ' ~ scope) -%}
  {%- do run_query('create temporary table ' ~ fingerprints ~ ' as
      select profile_id, count(*) as input_rows, sum(row_hash) as input_checksum
      from (' ~ fingerprint_sql ~ ') as input_rows
      where profile_id is not null
      group by profile_id') -%}
  {%- set stored = adapter.get_relation(inputs.database, inputs.schema, inputs.identifier) is not none
                   and adapter.get_relation(state.database, state.schema, state.identifier) is not none -%}
  {%- set last = lifeline.profile_state(var_names) if stored and is_incremental() else none -%}
  {%- set reason = none -%}
  {%- if not is_incremental() -%}
    {%- set reason = 'full build' -%}
  {%- elif not stored -%}
    {%- set reason = 'no stored fingerprints' -%}
  {%- else -%}
    {%- set reason = last.reason -%}
  {%- endif -%}
  {%- if reason is not none -%}
    {#- Every profile: the current ones and every stored one (their fingerprints are replaced). -#}
    {%- do run_query('create temporary table ' ~ scope ~ ' as select profile_id from ' ~ fingerprints
                     ~ ((' union select profile_id from ' ~ inputs) if stored else '')) -%}
    {%- if is_incremental() -%}
      {{ log(label ~ " (incremental): " ~ reason ~ ": recomputing every profile", info=True) }}
      {%- if flags.WHICH in ('run', 'build') -%}{%- do run_query('delete from ' ~ this) -%}{%- endif -%}
    {%- endif -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set last_as_of = last.as_of -%}
  {%- set moved = [] -%}
  {%- if time_sql is not none -%}
    {%- set previous = lifeline.stamp_literal(last_as_of) if last_as_of is not none else lifeline.as_of() -%}
    {%- if run_query('select count(*) from ' ~ state ~ ' where as_of is null or as_of <> ' ~ lifeline.as_of()).columns[0].values()[0] | int > 0 -%}
      {%- do moved.append(time_sql | replace('{low}', 'least(' ~ previous ~ ', ' ~ lifeline.as_of() ~ ')')
                                   | replace('{high}', 'greatest(' ~ previous ~ ', ' ~ lifeline.as_of() ~ ')')) -%}
    {%- endif -%}
  {%- endif -%}
  {%- do run_query('create temporary table ' ~ scope ~ ' as
      select coalesce(current_inputs.profile_id, stored_inputs.profile_id) as profile_id
      from ' ~ fingerprints ~ ' as current_inputs
      full outer join ' ~ inputs ~ ' as stored_inputs on stored_inputs.profile_id = current_inputs.profile_id
      where current_inputs.profile_id is null or stored_inputs.profile_id is null
         or current_inputs.input_rows <> stored_inputs.input_rows
         or current_inputs.input_checksum <> stored_inputs.input_checksum'
      ~ ((' union select profile_id from (' ~ moved[0] ~ ') as moved_by_time') if moved else '')) -%}
  {%- set counts = run_query('select count(*) from ' ~ scope).rows[0] -%}
  {{ log(label ~ " (incremental): recomputing " ~ counts[0] ~ " profiles (changed inputs"
         ~ (", or rows that depend on as_of, which moved" if moved else "") ~ ")", info=True) }}
  {{ return(scope) }}
{%- endmacro %}

{#- Post-hook: the scoped profiles' fingerprints replace the stored ones, and the run's as_of and
    settings are kept (inside the model's transaction, so rows and fingerprints stay together). -#}
{% macro store_profile_scope(var_names=[]) -%}
  {%- if not execute -%}{{ return('') }}{%- endif -%}
  {%- set inputs = lifeline.profile_inputs_relation() -%}
  {%- set state = lifeline.profile_inputs_relation('inputs_state') -%}
  {%- set fingerprints = lifeline.profile_fingerprint_table() -%}
  {%- set scope = lifeline.profile_scope_table() -%}
  create table if not exists {{ inputs }} as select * from {{ fingerprints }} where 1 = 0;
  delete from {{ inputs }} where profile_id in (select profile_id from {{ scope }});
  insert into {{ inputs }} (profile_id, input_rows, input_checksum)
      select profile_id, input_rows, input_checksum from {{ fingerprints }}
      where profile_id in (select profile_id from {{ scope }});
  {{ lifeline.store_profile_state(var_names) }}
{%- endmacro %}

{#- Post-hook statements keeping the run's as_of and settings in `intermediate.<model>__inputs_state`
    (read by profile_state). -#}
{% macro store_profile_state(var_names=[]) -%}
  {%- if not execute -%}{{ return('') }}{%- endif -%}
  {%- set state = lifeline.profile_inputs_relation('inputs_state') -%}
  create table if not exists {{ state }} as select {{ lifeline.as_of() }} as as_of, cast('' as {{ dbt.type_string() }}) as settings where 1 = 0;
  delete from {{ state }};
  insert into {{ state }} (as_of, settings) values ({{ lifeline.as_of() }}, '{{ lifeline.profile_settings(var_names) }}')
{%- endmacro %}
