{#- Connected components of the identity graph (see macros/connected_components.sql): every
    identifier that has an edge, with the smallest identifier_key of its component.

    Incremental: the table keeps, per identifier, a fingerprint of its neighbourhood (degree and
    a checksum of neighbour keys). A run compares the current fingerprints with the stored ones;
    an identifier whose neighbourhood changed (new edge, lost edge, new or vanished identifier)
    marks its stored component as touched, and only the touched components plus the new
    identifiers are recomputed, from their current edges. Every other row is left as it is. Any
    edge that joins a stored component changes a fingerprint inside it, so a recomputed set is
    always a union of whole components and the labels equal those of a full rebuild
    (`lifeline build --full-refresh`). Every written row carries changed_at, the run's start (so
    identity_map re-derives only the components recomputed since its last run). Rows of
    identifiers that no longer have an edge are written as tombstones (component_key null); the
    post-hook moves them to the side table int_identity_components__vanished (identifier_key,
    vanished_at) and deletes them (macros/identity_map_incremental.sql). -#}
{{ config(
    materialized='incremental',
    unique_key='identifier_key',
    incremental_strategy=('merge' if target.type == 'bigquery' else 'delete+insert'),
    on_schema_change='fail',
    post_hook="{{ lifeline.components_post_hook() }}"
) }}
{%- do lifeline.identity_require_columns(['changed_at']) -%}
{%- set edges = ref('int_identity_edges') -%}
{%- set fingerprint_sql -%}
    select node, count(*) as degree, sum(mod(neighbour, 2147483647)) as checksum
    from (
        select src as node, dst as neighbour from {{ edges }}
        union all
        select dst as node, src as neighbour from {{ edges }}
    ) directed
    group by node
{%- endset -%}

{%- if is_incremental() -%}
  {%- if execute -%}
    {%- do run_query('drop table if exists idc_fingerprint') -%}
    {%- do run_query('drop table if exists idc_recompute') -%}
    {%- do run_query('create temporary table idc_fingerprint as ' ~ fingerprint_sql) -%}
    {#- Stored components with at least one identifier whose neighbourhood changed. -#}
    {%- do run_query('create temporary table idc_recompute as
        with changed as (
            select stored.component_key
            from ' ~ this ~ ' stored
            left join idc_fingerprint fp on fp.node = stored.identifier_key
            where fp.node is null or fp.degree <> stored.degree or fp.checksum <> stored.checksum
        ),
        touched as (select distinct component_key from changed)
        select stored.identifier_key as node
        from ' ~ this ~ ' stored
        join touched on touched.component_key = stored.component_key
        union
        select fp.node
        from idc_fingerprint fp
        left join ' ~ this ~ ' stored on stored.identifier_key = fp.node
        where stored.identifier_key is null') -%}
    {%- set sizes = run_query('select (select count(*) from idc_recompute), (select count(*) from ' ~ this ~ ')') -%}
    {{ log("identity graph (incremental): recomputing " ~ sizes.columns[0].values()[0] ~ " identifiers in touched components, of " ~ sizes.columns[1].values()[0] ~ " stored", info=True) }}
  {%- endif -%}
  {%- set labels = lifeline.connected_components(
        'select src, dst from ' ~ edges ~ ' where src in (select node from idc_recompute) or dst in (select node from idc_recompute)',
        var('identity_max_iterations')) -%}

with recompute as (
    select node from idc_recompute
),

fingerprint as (
    select * from idc_fingerprint
),

labels as (
    select node, label from {{ labels }}
),

final as (
    select
        recompute.node as identifier_key,
        labels.label as component_key,
        fingerprint.degree,
        fingerprint.checksum,
        {{ lifeline.run_stamp() }} as changed_at
    from recompute
    left join labels on labels.node = recompute.node
    left join fingerprint on fingerprint.node = recompute.node
)

select * from final

{%- else -%}
  {%- set labels = lifeline.connected_components('select src, dst from ' ~ edges, var('identity_max_iterations')) -%}

with fingerprint as (
    {{ fingerprint_sql }}
),

labels as (
    select node, label from {{ labels }}
),

final as (
    select
        labels.node as identifier_key,
        labels.label as component_key,
        fingerprint.degree,
        fingerprint.checksum,
        {{ lifeline.run_stamp() }} as changed_at
    from labels
    join fingerprint on fingerprint.node = labels.node
)

select * from final
{%- endif %}
