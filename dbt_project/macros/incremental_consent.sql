{#- int_consent_signals, incremental per profile: what changed since the model's last run (mark M:
    the start of that run, in <this>__last_run, kept by record_profiles_post_hook).

    Every stored row names the source row it comes from (source, source_key: the customer_id,
    event_id or message_key). A source row's signals change, since M, when
      - it is a stg_customers row (re)staged (staged_at > M) or whose user_id changed profile;
      - it is an event int_profile_events wrote (attributed_at > M: new, re-attributed by a merge
        or split, or rewritten) or removed (int_profile_events__removed, events_removed_since in
        incremental_attribution.sql);
      - it is an opt-out of stg_message_events (re)staged, or whose recipient email or phone
        changed profile;
    where "changed profile" means listed in identity_map__changes (appeared, moved, vanished),
    which covers M as int_profile_message_events reads it (identity_map_changes_coverage in
    message_events_identity.sql). The model derives the signals of those rows only, and
    recomputes the profiles they had (the stored rows with their source_key: merged away, split,
    or the same) or have now: their new rows are those signals plus their stored rows of
    unchanged source rows (still exact: such a row kept its profile and content). Every other row
    is kept as it is.
    The staged models lose rows in two ways only (incremental_attribution.sql): as_of moving back
    (kept with the settings in <this>__inputs_state: store_profile_state, profile_state in
    incremental_profiles.sql) and every row rewritten (none staged at or before M). When those
    happened, or a record of the above is missing or incomplete (identity_map rebuilt in full or run
    twice since M, int_profile_events removed every row or wrote rows at two runs since M: its side
    table keeps its last run's removals only), or the model's SQL changed, the run recomputes
    every profile and says why in the log. -#}

{#- The changes since the last run (mark M) when the records above cover them: {'since': M as a SQL
    timestamp, 'removed': int_profile_events' side table, 'entries': the SQL condition on its
    entries after M}; none when the run computes every profile (a full build, or an incremental
    run that falls back to one, logged: it then empties the model first, in a real run only). -#}
{% macro consent_changes_since(customers, events, messages, identity_map, label) -%}
  {%- if not execute or not is_incremental() -%}{{ return(none) }}{%- endif -%}
  {%- set state = lifeline.profile_state() -%}
  {%- set check = namespace(reason=state.reason, mark=none, removed=none) -%}
  {%- if check.reason is none and state.as_of is not none
        and run_query('select count(*) from (select 1 as moved) as as_of_check where '
                      ~ lifeline.stamp_literal(state.as_of) ~ ' > ' ~ lifeline.as_of()).rows[0][0] | int > 0 -%}
    {%- set check.reason = 'as_of moved back since the last run (rows of stg_customers and stg_message_events may be gone)' -%}
  {%- endif -%}
  {%- if check.reason is none -%}
    {%- set coverage = lifeline.identity_map_changes_coverage(identity_map) -%}
    {%- set check.reason = coverage.reason -%}
    {%- set check.mark = coverage.mark -%}
  {%- endif -%}
  {%- if check.reason is none -%}
    {%- set since = lifeline.stamp_literal(check.mark) -%}
    {%- set check.removed = lifeline.events_removed_since(events, since) -%}
    {%- set check.reason = check.removed.reason -%}
  {%- endif -%}
  {%- for staged, source in [(customers, 'customers'), (messages, 'message_events')] if check.reason is none -%}
    {%- set oldest = lifeline.as_naive_datetime(run_query('select min(staged_at) from ' ~ staged).rows[0][0]) -%}
    {%- if oldest is not none and oldest > check.mark -%}
      {%- set check.reason = 'every row of ' ~ staged.identifier ~ ' was staged after the last run (it was reprocessed or refreshed)' -%}
    {%- elif oldest is none and run_query('select count(*) from ' ~ this ~ " where source = '" ~ source ~ "'").rows[0][0] | int > 0 -%}
      {%- set check.reason = staged.identifier ~ ' is empty' -%}
    {%- endif -%}
  {%- endfor -%}
  {%- if check.reason is none -%}
    {%- set written = run_query('select count(*), count(distinct attributed_at) from ' ~ events ~ ' where attributed_at > ' ~ since).rows[0] -%}
    {%- if written[1] | int > 1 -%}
      {%- set check.reason = events.identifier ~ ' ran more than once since the last run (its side table keeps its last run\'s removals only)' -%}
    {%- endif -%}
  {%- endif -%}
  {%- if check.reason is not none -%}
    {{ log(label ~ " (incremental): " ~ check.reason ~ ": recomputing every profile", info=True) }}
    {#- Only a real run empties the table; dbt compile/show must not change data. -#}
    {%- if flags.WHICH in ('run', 'build') -%}{%- do run_query('delete from ' ~ this) -%}{%- endif -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set changes = lifeline.identity_side_relation(identity_map, '__changes') -%}
  {{ log(label ~ " (incremental): inputs changed after " ~ check.mark.strftime("%Y-%m-%d %H:%M:%S.%f") ~ " ("
         ~ written[0] ~ " events written by " ~ events.identifier ~ ", "
         ~ run_query("select count(*) from " ~ changes ~ " where identifier_type in ('user_id', 'email', 'phone')").rows[0][0]
         ~ " identifiers changed profile_id): recomputing their profiles", info=True) }}
  {{ return({'since': since, 'removed': check.removed.relation, 'entries': check.removed.entries, 'changes': changes}) }}
{%- endmacro %}
