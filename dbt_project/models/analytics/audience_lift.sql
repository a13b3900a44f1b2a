{#- Per audience and channel, the conversion of members against the holdout. Each episode is a
    distinct (audience, channel, profile_id, entered_at) in audience_membership_history. Its
    exposure starts at the later of entered_at and the first run (as_of) that put the person in the
    audience (no message can go out before the audience is computed, so a window that closed before
    then measures nothing); it converts when the person placed a completed order after that and
    within var conversion_window_days (orders up to var as_of). lift = member rate - holdout rate
    with a normal-approximation 95% confidence interval for a difference of two proportions. -#}
with episodes as (
    select
        audience,
        channel,
        profile_id,
        entered_at,
        case when min(as_of) > entered_at then min(as_of) else entered_at end as exposed_at,
        max(case when is_holdout then 1 else 0 end) as is_holdout
    from {{ ref('audience_membership_history') }}
    where as_of <= {{ lifeline.as_of() }}
    group by audience, channel, profile_id, entered_at
),

converted as (
    select distinct episodes.audience, episodes.channel, episodes.profile_id, episodes.entered_at
    from episodes
    join {{ ref('int_profile_orders') }} as orders
        on orders.profile_id = episodes.profile_id
        and orders.is_purchase
        and orders.ordered_at > episodes.exposed_at
        and orders.ordered_at <= {{ lifeline.add_days(var('conversion_window_days'), 'episodes.exposed_at') }}
),

counts as (
    select
        episodes.audience,
        episodes.channel,
        sum(1 - episodes.is_holdout) as members,
        sum(case when episodes.is_holdout = 0 and converted.profile_id is not null then 1 else 0 end) as member_conversions,
        sum(episodes.is_holdout) as holdout,
        sum(case when episodes.is_holdout = 1 and converted.profile_id is not null then 1 else 0 end) as holdout_conversions
    from episodes
    left join converted
        on converted.audience = episodes.audience
        and converted.channel = episodes.channel
        and converted.profile_id = episodes.profile_id
        and converted.entered_at = episodes.entered_at
    group by episodes.audience, episodes.channel
),

rates as (
    select
        counts.*,
        cast(member_conversions as double precision) / nullif(members, 0) as member_rate,
        cast(holdout_conversions as double precision) / nullif(holdout, 0) as holdout_rate
    from counts
),

with_error as (
    select
        rates.*,
        member_rate - holdout_rate as lift,
        sqrt(member_rate * (1 - member_rate) / nullif(members, 0)
             + holdout_rate * (1 - holdout_rate) / nullif(holdout, 0)) as lift_std_error
    from rates
),

final as (
    select
        with_error.*,
        lift - 1.96 * lift_std_error as lift_ci_low,
        lift + 1.96 * lift_std_error as lift_ci_high,
        {{ var('conversion_window_days') }} as conversion_window_days
    from with_error
)

select * from final
