{#- int_profile_message_events follows identity_map's list of changes (identity_map__changes,
    macros/identity_map_incremental.sql) as int_record_profiles does, instead of comparing
    identity_map's email and phone rows with a copy of them. Its run is recorded in <this>__last_run
    by lifeline.record_profiles_post_hook (which also drops the copy an earlier release kept,
    <this>__identity_map). -#}

{#- Whether identity_map__changes holds every identifier whose profile_id changed since this model's
    last run: the side tables (and `extra_sides`) exist, identity_map's latest run recorded its
    changes (complete) and its run before that is no later than this model's last run (this model
    saw everything identity_map wrote up to then). Returns {'mark': the start of this model's last
    run, 'reason': none} when it does, else {'mark': ..., 'reason': why not}; the callers log.
    Used by int_profile_message_events (below) and int_record_profiles (record_profiles_since). -#}
{% macro identity_map_changes_coverage(identity_map, extra_sides=[]) -%}
  {%- set last_run = lifeline.identity_side_relation(this, '__last_run') -%}
  {%- set state = lifeline.identity_side_relation(identity_map, '__state') -%}
  {%- set changes = lifeline.identity_side_relation(identity_map, '__changes') -%}
  {%- set missing = lifeline.missing_side_table([last_run, state, changes] + extra_sides) -%}
  {%- if missing is not none -%}{{ return({'mark': none, 'reason': missing}) }}{%- endif -%}
  {%- set found = run_query('select (select max(ran_at) from ' ~ last_run ~ '), (select max(previous_ran_at) from ' ~ state
      ~ '), (select count(*) from ' ~ state ~ ' where complete)').rows[0] -%}
  {%- set mark = lifeline.as_naive_datetime(found[0]) -%}
  {%- set map_previous = lifeline.as_naive_datetime(found[1]) -%}
  {%- if mark is none -%}
    {{ return({'mark': none, 'reason': 'no run recorded'}) }}
  {%- elif found[2] | int == 0 -%}
    {{ return({'mark': mark, 'reason': "identity_map's last run did not record its changes (a full rebuild)"}) }}
  {%- elif map_previous is none or map_previous > mark -%}
    {{ return({'mark': mark, 'reason': 'identity_map ran more than once since the last run'}) }}
  {%- endif -%}
  {{ return({'mark': mark, 'reason': none}) }}
{%- endmacro %}

{#- The start of this model's last run when identity_map__changes covers it (above), else none with
    the reason logged under `label` (the caller then does what it did without the list). `types`:
    the identifier types counted in the log line. -#}
{% macro identity_map_changes_since(identity_map, label, types) -%}
  {%- if not execute or not is_incremental() -%}{{ return(none) }}{%- endif -%}
  {%- set coverage = lifeline.identity_map_changes_coverage(identity_map) -%}
  {%- if coverage.reason is not none -%}
    {{ log(label ~ " (incremental): " ~ coverage.reason ~ ": without identity_map's list of changes", info=True) }}
    {{ return(none) }}
  {%- endif -%}
  {%- set changes = lifeline.identity_side_relation(identity_map, '__changes') -%}
  {{ log(label ~ " (incremental): with identity_map's list of changes since " ~ coverage.mark.strftime("%Y-%m-%d %H:%M:%S.%f")
         ~ ": " ~ run_query("select count(*) from " ~ changes ~ " where identifier_type in ('" ~ (types | join("', '")) ~ "')").rows[0][0]
         ~ " identifiers (" ~ (types | join(', ')) ~ ") changed profile_id", info=True) }}
  {{ return(coverage.mark) }}
{%- endmacro %}
