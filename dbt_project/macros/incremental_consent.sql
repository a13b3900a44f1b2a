{#- int_consent_signals, incremental per profile: which profiles' consent signals may have changed
    since the model's last run (mark M: the start of that run, in <this>__last_run, kept by
    record_profiles_post_hook).

    Every stored row names the source row it comes from (source_key: the customer_id, event_id or
    message_key), so a changed source row finds the profile it gave its signals to (the old
    profile: merged away, split, or the same) among the stored rows, and the current inputs give
    the new one. A profile is recomputed when, since M:
      - a stg_customers row was (re)staged (staged_at > M), or its user_id changed profile;
      - int_profile_events wrote one of its events (attributed_at > M: new, re-attributed by a
        merge or split, or rewritten) or removed it (int_profile_events__removed,
        events_removed_since in incremental_attribution.sql);
      - a stg_message_events row was (re)staged, or the recipient email or phone of an opt-out
        changed profile;
      - one of its user_id, email or phone identifiers appeared in it, left it or vanished
        (identity_map__changes, covered as int_profile_message_events reads it:
        identity_map_changes_coverage in message_events_identity.sql).
    The staged models lose rows in two ways only (incremental_attribution.sql): as_of moving back
    (kept with the settings in <this>__inputs_state: store_profile_state, profile_state in
    incremental_profiles.sql) and every row rewritten (none staged at or before M). When those
    happened, or a record of the above is missing or incomplete (identity_map rebuilt in full or run
    twice since M, int_profile_events removed every row or wrote rows at two runs since M: its side
    table keeps its last run's removals only), or the model's SQL changed, the run recomputes
    every profile and says why in the log. -#}

{#- Builds the temporary table `<model>__scope` (profile_id) of the profiles to recompute and returns
    it, or none when the run computes every profile (a full build, or an incremental run that falls
    back to one: it then empties the model first, in a real run only). `opt_out` is the SQL filter
    on stg_message_events rows that are consent signals. -#}
{% macro consent_scope(customers, events, messages, identity_map, opt_out, label) -%}
  {%- if not execute or not is_incremental() -%}{{ return(none) }}{%- endif -%}
  {%- set scope = this.identifier ~ '__scope' -%}
  {%- set written = this.identifier ~ '__written_events' -%}
  {%- do run_query('drop table if exists ' ~ scope) -%}
  {%- do run_query('drop table if exists ' ~ written) -%}
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
    {%- do run_query('create temporary table ' ~ written ~ ' as
        select event_id, profile_id, event_type, attributed_at from ' ~ events ~ ' where attributed_at > ' ~ since) -%}
    {%- if run_query('select count(distinct attributed_at) from ' ~ written).rows[0][0] | int > 1 -%}
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
  {%- do run_query('create temporary table ' ~ scope ~ ' as
      with changed_identifiers as (
          select identifier_type, identifier_value from ' ~ changes ~ "
          where identifier_type in ('user_id', 'email', 'phone')
      ),
      restaged_customers as (
          select customer_id from " ~ customers ~ ' where staged_at > ' ~ since ~ '
      ),
      restaged_opt_outs as (
          select message_key, recipient_email, recipient_phone from ' ~ messages ~ '
          where staged_at > ' ~ since ~ ' and ' ~ opt_out ~ '
      ),
      changed_keys as (
          select event_id as source_key from ' ~ written ~ '
          union
          select event_id from ' ~ check.removed.relation ~ ' where ' ~ check.removed.entries ~ '
          union
          select customer_id from restaged_customers
          union
          select identifier_value from changed_identifiers where identifier_type = \'user_id\'
          union
          select message_key from ' ~ messages ~ ' where staged_at > ' ~ since ~ '
          union
          select message_key from ' ~ messages ~ '
          where ' ~ opt_out ~ "
            and (recipient_email in (select identifier_value from changed_identifiers where identifier_type = 'email')
                 or recipient_phone in (select identifier_value from changed_identifiers where identifier_type = 'phone'))
      ),
      touched as (
          select profile_id from " ~ this ~ ' where source_key in (select source_key from changed_keys)
          union
          select profile_id from ' ~ written ~ " where event_type in ('subscribe', 'unsubscribe')
          union
          select identity_map.profile_id from " ~ identity_map ~ ' as identity_map
          join changed_identifiers
              on changed_identifiers.identifier_type = identity_map.identifier_type
              and changed_identifiers.identifier_value = identity_map.identifier_value
          union
          select identity_map.profile_id from restaged_customers
          join ' ~ identity_map ~ " as identity_map
              on identity_map.identifier_type = 'user_id' and identity_map.identifier_value = restaged_customers.customer_id
          union
          select identity_map.profile_id from restaged_opt_outs
          join " ~ identity_map ~ " as identity_map
              on identity_map.identifier_type = 'email' and identity_map.identifier_value = restaged_opt_outs.recipient_email
          union
          select identity_map.profile_id from restaged_opt_outs
          join " ~ identity_map ~ " as identity_map
              on identity_map.identifier_type = 'phone' and identity_map.identifier_value = restaged_opt_outs.recipient_phone
      )
      select distinct profile_id from touched where profile_id is not null") -%}
  {%- set sizes = run_query('select (select count(*) from ' ~ written ~ '), (select count(*) from ' ~ scope ~ ')').rows[0] -%}
  {{ log(label ~ " (incremental): inputs changed after " ~ check.mark.strftime("%Y-%m-%d %H:%M:%S.%f") ~ " ("
         ~ sizes[0] ~ " events written by " ~ events.identifier ~ "): recomputing " ~ sizes[1] ~ " profiles", info=True) }}
  {{ return(scope) }}
{%- endmacro %}
