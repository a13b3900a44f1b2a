{#- int_profile_message_events follows identity_map's list of changes (identity_map__changes,
    macros/identity_map_incremental.sql) as int_record_profiles does, instead of comparing
    identity_map's email and phone rows with a copy of them. Its run is recorded in <this>__last_run
    by lifeline.record_profiles_post_hook (which also drops the copy an earlier release kept,
    <this>__identity_map). -#}

{#- The start of this model's last run when identity_map__changes holds every identifier whose
    profile_id changed since then: the side tables exist, identity_map's latest run recorded its
    changes (complete) and its run before that is no later than this model's last run (this model
    saw everything identity_map wrote up to then). Else none, with the reason logged under `label`
    (the caller then does what it did without the list). `types`: the identifier types counted in
    the log line. -#}
{% macro identity_map_changes_since(identity_map, label, types) -%}
  {%- if not execute or not is_incremental() -%}{{ return(none) }}{%- endif -%}
  {%- set last_run = lifeline.identity_side_relation(this, '__last_run') -%}
  {%- set state = lifeline.identity_side_relation(identity_map, '__state') -%}
  {%- set changes = lifeline.identity_side_relation(identity_map, '__changes') -%}
  {%- set reason = namespace(text=none, mark=none) -%}
  {%- for side in (last_run, state, changes) if reason.text is none -%}
    {%- if adapter.get_relation(side.database, side.schema, side.identifier) is none -%}
      {%- set reason.text = 'the side table ' ~ side ~ ' is missing' -%}
    {%- endif -%}
  {%- endfor -%}
  {%- if reason.text is none -%}
    {%- set found = run_query('select (select max(ran_at) from ' ~ last_run ~ '), (select max(previous_ran_at) from ' ~ state
        ~ '), (select count(*) from ' ~ state ~ ' where complete)').rows[0] -%}
    {%- set reason.mark = lifeline.as_naive_datetime(found[0]) -%}
    {%- set map_previous = lifeline.as_naive_datetime(found[1]) -%}
    {%- if reason.mark is none -%}
      {%- set reason.text = 'no run recorded' -%}
    {%- elif found[2] | int == 0 -%}
      {%- set reason.text = "identity_map's last run did not record its changes (a full rebuild)" -%}
    {%- elif map_previous is none or map_previous > reason.mark -%}
      {%- set reason.text = 'identity_map ran more than once since the last run' -%}
    {%- endif -%}
  {%- endif -%}
  {%- if reason.text is not none -%}
    {{ log(label ~ " (incremental): " ~ reason.text ~ ": without identity_map's list of changes", info=True) }}
    {{ return(none) }}
  {%- endif -%}
  {{ log(label ~ " (incremental): with identity_map's list of changes since " ~ reason.mark.strftime("%Y-%m-%d %H:%M:%S.%f")
         ~ ": " ~ run_query("select count(*) from " ~ changes ~ " where identifier_type in ('" ~ (types | join("', '")) ~ "')").rows[0][0]
         ~ " identifiers (" ~ (types | join(', ')) ~ ") changed profile_id", info=True) }}
  {{ return(reason.mark) }}
{%- endmacro %}
