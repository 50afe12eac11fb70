//! An in-order parallel map over a slice with scoped threads: the tree commands (`render --dir`, `hydrate`, the
//! Git view's index) spread independent intents over the machine's cores. Small inputs stay on the calling
//! thread; a panic in a worker is the caller's panic.

/// Below this many items, threads cost more than they save.
const MIN_PARALLEL: usize = 64;

/// At most this many threads, whatever the machine has.
const MAX_THREADS: usize = 8;

/// `items.iter().map(f).collect()`, on up to [`MAX_THREADS`] threads, in the order of `items`.
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(MAX_THREADS);
    if threads < 2 || items.len() < MIN_PARALLEL {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn in_order_whatever_the_size() {
        for n in [0, 1, 63, 64, 65, 1000, 1001] {
            let items: Vec<usize> = (0..n).collect();
            let doubled = super::map(&items, |i| i * 2);
            assert_eq!(doubled, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        }
    }
}
