"""Pairing figure captions with figure regions on one page, by layout."""

from __future__ import annotations

from extract.records import BBox, Caption, Region


def union(boxes: list[BBox]) -> BBox:
    """The box around all `boxes`."""
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    """Length of the overlap of the spans [a0, a1] and [b0, b1]."""
    return max(0.0, min(a1, b1) - max(a0, b0))


def _blocked(between: BBox, blockers: list[BBox], horizontal: bool) -> bool:
    """True when a body-text block lies inside the gap `between` (caption and figure apart)."""
    x0, y0, x1, y1 = between
    for b in blockers:
        if horizontal:
            if b[0] >= x0 - 2 and b[2] <= x1 + 2 and overlap(b[1], b[3], y0, y1) > 2:
                return True
        elif b[1] >= y0 - 2 and b[3] <= y1 + 2 and overlap(b[0], b[2], x0, x1) > 2:
            return True
    return False


def caption_distance(
    member: BBox, cluster: BBox, cap: BBox, blockers: list[BBox]
) -> float | None:
    """Layout distance from a region (inside its cluster) to a caption, or None if unrelated.

    Below is preferred over above, above over beside; body text between the two blocks them.
    """
    best: float | None = None
    mx0, my0, mx1, my1 = member
    kx0, ky0, kx1, ky1 = cluster
    cx0, cy0, cx1, cy1 = cap
    x_ov = overlap(mx0, mx1, cx0, cx1)
    if x_ov * overlap(my0, my1, cy0, cy1) >= 0.5 * (cx1 - cx0) * (cy1 - cy0):
        return 0.0  # the caption is printed on (or hidden behind) the figure itself
    wide_enough = x_ov >= 0.2 * min(mx1 - mx0, cx1 - cx0)
    options: list[tuple[float, BBox, bool]] = []
    if wide_enough and cy0 >= ky1 - 5:
        options.append((cy0 - ky1, (mx0, ky1, mx1, cy0), False))
    if wide_enough and cy1 <= ky0 + 5:
        options.append((ky0 - cy1 + 4, (mx0, cy1, mx1, ky0), False))
    y_ov = overlap(my0, my1, cy0, cy1)
    if y_ov >= 0.5 * min(cy1 - cy0, my1 - my0):
        if cx0 >= kx1 - 5:
            options.append((cx0 - kx1 + 6, (kx1, max(my0, cy0), cx0, min(my1, cy1)), True))
        if cx1 <= kx0 + 5:
            options.append((kx0 - cx1 + 6, (cx1, max(my0, cy0), kx0, min(my1, cy1)), True))
    for dist, between, horizontal in options:
        if dist > 160 or _blocked(between, blockers, horizontal):
            continue
        best = dist if best is None else min(best, dist)
    return best


def pair_captions(
    regions: list[Region], captions: list[Caption], blockers: list[BBox]
) -> list[int | None]:
    """For each region the index of its caption (or None), by layout on one page."""
    clusters = _clusters([r.bbox for r in regions], blockers + [c.bbox for c in captions])
    result: list[int | None] = []
    for i, region in enumerate(regions):
        best: tuple[float, int] | None = None
        for member in (region.bbox, clusters[i]):  # the cluster: a short caption under A of A|B
            for j, cap in enumerate(captions):
                d = caption_distance(member, clusters[i], cap.bbox, blockers)
                if d is not None and (best is None or d < best[0]):
                    best = (d, j)
            if best is not None:
                break
        result.append(None if best is None else best[1])
    result = _one_caption_each(regions, captions, blockers, clusters, result)
    return _adopt_row_captions(regions, captions, blockers, result)


def _one_caption_each(
    regions: list[Region],
    captions: list[Caption],
    blockers: list[BBox],
    clusters: list[BBox],
    result: list[int | None],
) -> list[int | None]:
    """Re-pair one to one when a caption is left unpaired while another holds several clusters.

    Captions set above their figures put figure 2's caption right under figure 1, so nearest
    pairing gives both figures caption 2 and drops caption 1. Then the clusters (pieces of one
    figure stay together) and captions are matched one to one, as many pairs as possible at the
    least layout distance, with no other caption between a pair; a cluster left over keeps its
    nearest caption.
    """
    figure_caps = [j for j, c in enumerate(captions) if c.label != "Table"]
    held: dict[int, set[BBox]] = {}
    for i, k in enumerate(result):
        if k in figure_caps or k is None:
            held.setdefault(-1 if k is None else k, set()).add(clusters[i])
    free = held.pop(-1, set())
    if len(held) == len(figure_caps) or all(len(v) < 2 for v in held.values()):
        return result
    units = sorted(free.union(*held.values()))
    if len(units) * len(figure_caps) > 20000:
        return result
    members_of: dict[BBox, list[BBox]] = {}
    for region, cluster in zip(regions, clusters, strict=True):
        members_of.setdefault(cluster, []).append(region.bbox)
    cost: list[list[float | None]] = []
    for unit in units:
        members = members_of[unit]
        row: list[float | None] = []
        for j in figure_caps:
            others = [c.bbox for k, c in enumerate(captions) if k != j]
            dists = [caption_distance(m, unit, captions[j].bbox, blockers + others)
                     for m in members]
            found = [d for d in dists if d is not None]
            row.append(min(found) if found else None)
        cost.append(row)
    matched = _min_cost_matching(cost)
    if len(matched) <= len(held):
        return result
    caption_of = {units[n]: figure_caps[j] for n, j in matched.items()}
    return [caption_of.get(cluster, k) for cluster, k in zip(clusters, result, strict=True)]


def _min_cost_matching(cost: list[list[float | None]]) -> dict[int, int]:
    """Row -> column pairs: the most pairs (None = no edge), then the least total cost."""
    rows, cols = len(cost), len(cost[0]) if cost else 0
    if rows > cols:
        flipped = _min_cost_matching([[cost[r][c] for r in range(rows)] for c in range(cols)])
        return {r: c for c, r in flipped.items()}
    big = 1e6  # a missing edge: more than any set of real pairs costs
    matrix = [[big if d is None else float(d) for d in row] for row in cost]
    # Hungarian algorithm for rows <= cols, O(rows^2 cols): potentials u, v; p[col] = its row.
    inf = float("inf")
    u, v = [0.0] * (rows + 1), [0.0] * (cols + 1)
    p, way = [0] * (cols + 1), [0] * (cols + 1)
    for r in range(1, rows + 1):
        p[0], j0 = r, 0
        minv, used = [inf] * (cols + 1), [False] * (cols + 1)
        while True:
            used[j0] = True
            i0, delta, j1 = p[j0], inf, 0
            for j in range(1, cols + 1):
                if not used[j]:
                    cur = matrix[i0 - 1][j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j], way[j] = cur, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(cols + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    return {p[c] - 1: c - 1 for c in range(1, cols + 1) if p[c] and cost[p[c] - 1][c - 1] is not None}


def _adopt_row_captions(
    regions: list[Region], captions: list[Caption], blockers: list[BBox], result: list[int | None]
) -> list[int | None]:
    """An unpaired region in the same row as a paired one shares its caption when that caption
    lies below (or above) the whole row: a two-column-wide figure with a one-column caption."""
    out = list(result)
    for i, region in enumerate(regions):
        if result[i] is not None:
            continue
        x0, y0, x1, y1 = region.bbox
        for j, other in enumerate(regions):
            k = result[j]
            if k is None or overlap(y0, y1, other.bbox[1], other.bbox[3]) < 0.5 * min(
                y1 - y0, other.bbox[3] - other.bbox[1]
            ):
                continue
            cap = captions[k].bbox
            if cap[1] >= max(y1, other.bbox[3]) - 5:
                gap = (x0, y1, x1, cap[1])
            elif cap[3] <= min(y0, other.bbox[1]) + 5:
                gap = (x0, cap[3], x1, y0)
            else:
                continue
            if not _blocked(gap, blockers, horizontal=False):
                out[i] = k
                break
    return out


def _clusters(boxes: list[BBox], text: list[BBox], gap: float = 20.0) -> list[BBox]:
    """Each box's cluster: boxes chained by small gaps with no text in between."""
    parent = list(range(len(boxes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(boxes):
        for j in range(i + 1, len(boxes)):
            b = boxes[j]
            h_gap = max(b[0] - a[2], a[0] - b[2])
            v_gap = max(b[1] - a[3], a[1] - b[3])
            if h_gap > gap or v_gap > gap:
                continue
            between = (
                min(a[2], b[2]) if h_gap > 0 else max(a[0], b[0]),
                min(a[3], b[3]) if v_gap > 0 else max(a[1], b[1]),
                max(a[0], b[0]) if h_gap > 0 else min(a[2], b[2]),
                max(a[1], b[1]) if v_gap > 0 else min(a[3], b[3]),
            )
            if not any(_intersects(between, t) for t in text):
                parent[find(i)] = find(j)
    groups: dict[int, list[BBox]] = {}
    for i, b in enumerate(boxes):
        groups.setdefault(find(i), []).append(b)
    return [union(groups[find(i)]) for i in range(len(boxes))]


def _intersects(a: BBox, b: BBox) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
