{#- Behaviour over clocks: where each candidate stands in its audience's sequence, from how they
    answered the messages of this episode (message events whose campaign is the audience name, sent
    at or after entered_at).
      step          = sends in the episode + 1, at most var audience_max_steps (no engagement ->
                      the next step of the escalation);
      last_response = none (nothing sent yet) | clicked | opened | ignored, for the latest send;
      angle         = 'social_proof' once they clicked and did not buy since (a different angle),
                      else the trigger's own angle;
      format        = 'plain_text' when the latest answered send was opened without a click (a
                      different format), else 'visual';
      offer_percent = 0 until var offer_after_ignored_steps sends went unanswered (no open, no
                      click), then the var offer_tiers_percent tiers one per further ignored send,
                      never above var offer_max_percent; 0 for audiences whose audience_settings
                      row has offer_allowed = 0 (sunset). -#}
{%- set tiers = var('offer_tiers_percent') %}
{%- set cap = var('offer_max_percent') | int %}
{%- set after = var('offer_after_ignored_steps') | int %}
with candidates as (
    select * from {{ ref('int_audience_candidates') }}
),

offer_rules as (
    select audience, max(offer_allowed) as offer_allowed
    from {{ ref('audience_settings') }}
    group by audience
),

{#- Only the message events of a candidate's audience (campaign) are grouped: a semi-join on
    (profile_id, campaign) before the group-by, instead of grouping every message event of every
    profile (the candidates are a few percent of the profiles). #}
candidate_keys as (
    select distinct profile_id, audience from candidates
),

messages as (
    select
        message_events.profile_id,
        message_events.campaign as audience,
        message_events.message_id,
        min(case when message_events.event = 'sent' then message_events.occurred_at end) as sent_at,
        max(case when message_events.event = 'opened' then 1 else 0 end) as opened,
        max(case when message_events.event = 'clicked' then 1 else 0 end) as clicked,
        max(case when message_events.event = 'clicked' then message_events.occurred_at end) as clicked_at
    from {{ ref('int_profile_message_events') }} as message_events
    join candidate_keys
        on candidate_keys.profile_id = message_events.profile_id
        and candidate_keys.audience = message_events.campaign
    group by message_events.profile_id, message_events.campaign, message_events.message_id
),

episode_messages as (
    select
        messages.*,
        row_number() over (partition by messages.profile_id, messages.audience order by messages.sent_at desc, messages.message_id desc) as recency_rank
    from messages
    join candidates
        on candidates.profile_id = messages.profile_id
        and candidates.audience = messages.audience
    where messages.sent_at is not null
      and messages.sent_at >= candidates.entered_at
),

episode as (
    select
        profile_id,
        audience,
        count(*) as sends,
        sum(case when opened = 0 and clicked = 0 then 1 else 0 end) as ignored_sends,
        max(clicked_at) as last_clicked_at,
        max(case when recency_rank = 1 then
                case when clicked = 1 then 'clicked' when opened = 1 then 'opened' else 'ignored' end
            end) as last_response,
        max(case when opened = 1 and clicked = 0 then sent_at end) as last_open_only_at,
        max(case when clicked = 1 then sent_at end) as last_clicked_sent_at
    from episode_messages
    group by profile_id, audience
),

bought_after_click as (
    select distinct episode.profile_id, episode.audience
    from episode
    join {{ ref('int_profile_orders') }} as orders
        on orders.profile_id = episode.profile_id
        and orders.is_purchase
        and orders.ordered_at > episode.last_clicked_at
),

counted as (
    select
        candidates.audience,
        candidates.profile_id,
        candidates.entered_at,
        candidates.product_id,
        candidates.angle as base_angle,
        coalesce(episode.sends, 0) as sends,
        coalesce(episode.ignored_sends, 0) as ignored_sends,
        coalesce(episode.last_response, 'none') as last_response,
        episode.last_clicked_at is not null and bought_after_click.profile_id is null as clicked_without_buying,
        episode.last_open_only_at is not null
            and (episode.last_clicked_sent_at is null or episode.last_open_only_at > episode.last_clicked_sent_at) as opened_without_clicking,
        coalesce(offer_rules.offer_allowed, 0) as offer_allowed
    from candidates
    left join episode
        on episode.profile_id = candidates.profile_id and episode.audience = candidates.audience
    left join bought_after_click
        on bought_after_click.profile_id = candidates.profile_id and bought_after_click.audience = candidates.audience
    left join offer_rules on offer_rules.audience = candidates.audience
),

final as (
    select
        audience,
        profile_id,
        entered_at,
        product_id,
        sends,
        ignored_sends,
        last_response,
        case when sends + 1 > {{ var('audience_max_steps') }} then {{ var('audience_max_steps') }} else sends + 1 end as step,
        case when clicked_without_buying then 'social_proof' else base_angle end as angle,
        case when opened_without_clicking then 'plain_text' else 'visual' end as message_format,
        case
            when offer_allowed = 0 or ignored_sends < {{ after }} then 0
            {%- for tier in tiers %}
            when ignored_sends = {{ after + loop.index0 }} then {{ [tier | int, cap] | min }}
            {%- endfor %}
            else {{ [tiers[-1] | int, cap] | min }}
        end as offer_percent
    from counted
)

select * from final
