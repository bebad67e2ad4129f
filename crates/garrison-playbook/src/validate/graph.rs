//! References between steps: did-you-mean hints, cycles, and what runs before each step.

use std::collections::{BTreeSet, HashMap};

pub(super) fn hint(id: &str, index: &HashMap<String, usize>) -> String {
    let mut best: Option<(&str, usize)> = None;
    for k in index.keys() {
        let d = edit_distance(id, k);
        if d <= 2 && best.is_none_or(|(_, bd)| d < bd) {
            best = Some((k, d));
        }
    }
    match best {
        Some((k, _)) => format!(" (did you mean `{k}`?)"),
        None => String::new(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Every elementary cycle found by a DFS (each reported once, rotated to start at its
/// smallest index).
pub(super) fn find_cycles(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = edges.len();
    let mut color = vec![0u8; n]; // 0 new, 1 on stack, 2 done
    let mut stack: Vec<usize> = Vec::new();
    let mut found: BTreeSet<Vec<usize>> = BTreeSet::new();
    fn dfs(
        v: usize,
        edges: &[Vec<usize>],
        color: &mut [u8],
        stack: &mut Vec<usize>,
        found: &mut BTreeSet<Vec<usize>>,
    ) {
        color[v] = 1;
        stack.push(v);
        for &w in &edges[v] {
            if color[w] == 1 {
                if let Some(pos) = stack.iter().position(|&x| x == w) {
                    let mut cycle: Vec<usize> = stack[pos..].to_vec();
                    cycle.reverse(); // edges point at dependencies: show execution order
                    if let Some(min_pos) = cycle
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, &x)| x)
                        .map(|(i, _)| i)
                    {
                        cycle.rotate_left(min_pos);
                    }
                    found.insert(cycle);
                }
            } else if color[w] == 0 {
                dfs(w, edges, color, stack, found);
            }
        }
        stack.pop();
        color[v] = 2;
    }
    for v in 0..n {
        if color[v] == 0 {
            dfs(v, edges, &mut color, &mut stack, &mut found);
        }
    }
    found.into_iter().collect()
}

pub(super) fn ancestors(
    edges: &[Vec<usize>],
    parent: &[Option<usize>],
    cyclic: &[bool],
) -> Vec<BTreeSet<usize>> {
    let n = edges.len();
    let mut out = vec![BTreeSet::new(); n];
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, p) in parent.iter().enumerate() {
        if let Some(p) = p {
            members[*p].push(i);
        }
    }
    for i in 0..n {
        if cyclic[i] {
            continue;
        }
        let mut seen = BTreeSet::new();
        let mut todo: Vec<usize> = edges[i].clone();
        while let Some(v) = todo.pop() {
            if !seen.insert(v) {
                continue;
            }
            todo.extend(&edges[v]);
            // a completed parallel step implies its members are settled
            todo.extend(&members[v]);
        }
        seen.remove(&i);
        out[i] = seen;
    }
    out
}
