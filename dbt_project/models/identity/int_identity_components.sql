{#- Connected components of the identity graph (see macros/connected_components.sql): every
    identifier that has an edge, with the smallest identifier_key of its component. -#}
{%- set labels = lifeline.connected_components(
        'select src, dst from ' ~ ref('int_identity_edges'),
        var('identity_max_iterations')) -%}
with labels as (
    select node, label from {{ labels }}
),

final as (
    select
        node as identifier_key,
        label as component_key
    from labels
)

select * from final
