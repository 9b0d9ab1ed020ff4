// Exact OT: the network simplex on the bipartite transport graph (ALGORITHMS 3.1).
//
// Nodes 0..n-1 are the sources (supply a_i), n..n+m-1 the sinks (demand b_j) and n+m an
// artificial root. The n*m transport arcs i -> j are implicit (arc id i*m + j, cost C_ij); node v
// also has an artificial arc to or from the root (LEMON's start: a source's arc v -> root costs 0,
// the root's arc to a sink costs A > any path, so artificial flow is never worth keeping). Every
// arc is uncapacitated, so a non-tree arc always carries zero flow: the only per-arc state is the
// cost matrix itself and the spanning tree lives in O(n + m) node arrays (parent, the arc to the
// parent with its direction and flow, depth, child lists). That keeps the solver's memory at C
// plus O(n + m) and pricing a plain streaming read of C.
//
// Potentials: P[i] = f_i for sources, P[n + j] = -g_j for sinks, P[root] = 0, and the reduced
// cost of an arc u -> v is cost - P[u] + P[v] (for a transport arc: C_ij - f_i - g_j).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

#include "pyot/common/config.hpp"
#include "pyot/common/line.hpp"
#include "pyot/common/status.hpp"
#include "pyot/common/threads.hpp"
#include "pyot/common/view.hpp"

namespace pyot::exact {

struct Options {
  index_t max_iter = 1'000'000;  // pivots
  int threads = 0;               // pricing threads for one problem (0 = all cores)
};

// The optimal plan by its support (at most n + m - 1 cells), exact potentials and <P, C>.
struct Result {
  Status status = Status::Converged;
  index_t n_iter = 0;  // pivots
  double value = 0;
  std::vector<double> f, g;
  std::vector<index_t> rows, cols;
  std::vector<double> mass;
};

namespace detail {

constexpr double kInf = std::numeric_limits<double>::infinity();
// A reduced cost counts as negative below -kRelTol * max(|C_ij|, |f_i|, |g_j|): round-off in
// the potentials cannot fake an improving arc, and the final check uses the same test.
constexpr double kRelTol = 16 * std::numeric_limits<double>::epsilon();
// Pricing (candidate-list block search): blocks of kBlockFactor sqrt(nm) arcs are scanned
// cyclically until one holds improving arcs; the kListSize best of them form a candidate list, and
// the next pivots take the best arc still improving in that list (re-priced from the potentials,
// its costs kept beside it) before C is read again. After kSerialBlocks empty blocks, the scan
// continues in super-blocks of kSuperBlocks blocks (at least kMinSuperBlock arcs) split over
// the threads. Every rule depends on the arcs' order only, never on the thread count, so
// neither does the pivot sequence.
constexpr int kSerialBlocks = 2;
constexpr index_t kSuperBlocks = 32;
constexpr index_t kMinSuperBlock = index_t{1} << 18;
constexpr index_t kMinParallelScan = index_t{1} << 16;  // arcs per thread of a parallel scan
constexpr size_t kListSize = 8;
constexpr double kBlockFactor = 3.0;  // block = kBlockFactor * sqrt(nm), tuned on the bench grid

struct Candidate {
  double rc = 0;
  index_t arc = -1;  // -1: none
};

// Whether the next super-block is scanned by all threads or by one. Both give the same result
// (so the choice changes the speed only) and the choice follows measured throughput: a
// parallel region costs microseconds on an idle machine but up to a scheduler quantum when
// another process holds a core, where threads make pricing slower (POT issue 698). Parallel
// scans are kept while they beat the serial rate by kGain; the losing mode is re-measured from
// time to time, less often while the measurements agree.
class ScanPolicy {
 public:
  explicit ScanPolicy(int threads) : threads_(threads) {}
  int threads_for_next() {
    if (threads_ <= 1) return 1;
    if (serial_rate_ == 0) return 1;
    if (parallel_rate_ == 0) return threads_;
    const bool parallel_wins = parallel_rate_ > kGain * serial_rate_;
    const bool probe = ++since_probe_ >= probe_every_;
    if (probe) since_probe_ = 0;
    return probe != parallel_wins ? threads_ : 1;
  }
  void record(int threads, index_t arcs, double seconds) {
    const bool parallel_won = parallel_rate_ > kGain * serial_rate_;
    double& rate = threads > 1 ? parallel_rate_ : serial_rate_;
    const double now = double(arcs) / std::max(seconds, 1e-9);
    rate = rate == 0 ? now : 0.75 * rate + 0.25 * now;
    // A probe that confirms the current choice makes the next probe wait twice as long.
    const bool same = (parallel_rate_ > kGain * serial_rate_) == parallel_won;
    probe_every_ = same ? std::min<index_t>(2 * probe_every_, kMaxProbe) : kMinProbe;
  }

 private:
  static constexpr double kGain = 1.2;
  static constexpr index_t kMinProbe = 8, kMaxProbe = 1024;
  int threads_;
  index_t since_probe_ = 0, probe_every_ = kMinProbe;
  double serial_rate_ = 0, parallel_rate_ = 0;
};

// An arc of the candidate list with its cost (so re-pricing touches only the potentials).
struct Entry {
  double rc;
  double cost;
  index_t arc;
  bool operator<(const Entry& o) const { return rc < o.rc || (rc == o.rc && arc < o.arc); }
};

// The reduced cost C_ij - f_i - g_j of a transport arc (Pg_j = -g_j). Every pass evaluates it
// by this one expression, so a chunk's minimum is found again bit for bit by the scalar pass.
template <class T>
PYOT_ALWAYS_INLINE double transport_rc(T c, double pg, double fi) {
  return (double(c) + pg) - fi;
}

constexpr index_t kChunk = 64;  // columns per minimum taken by chunk_minima

// mins[k] = least reduced cost over the columns [j0 + k kChunk, j0 + (k + 1) kChunk) of one row
// (the last chunk may be shorter): one vector pass, one call per row segment.
template <class T>
PYOT_MULTIVERSION void chunk_minima(const T* c, const double* pg, double fi, index_t j0, index_t j1,
                                    double* mins) {
  for (index_t k0 = j0, k = 0; k0 < j1; k0 += kChunk, ++k) {
    const index_t k1 = std::min(j1, k0 + kChunk);
    double best = kInf;
#pragma omp simd reduction(min : best)
    for (index_t j = k0; j < k1; ++j) best = std::min(best, transport_rc(c[j], pg[j], fi));
    mins[k] = best;
  }
}

// Round-off margin of a reduced cost: kRelTol * max(|C_ij|, |f_i|, |g_j|).
PYOT_ALWAYS_INLINE double rc_margin(double c, double pg, double fi) {
  return kRelTol * std::max(std::abs(c), std::max(std::abs(pg), std::abs(fi)));
}

// The kListSize best improving arcs offered so far: a max-heap on (rc, arc).
class BestArcs {
 public:
  // Reduced costs at or above this cannot enter the set.
  double bound() const { return heap_.size() < kListSize ? 0.0 : heap_.front().rc; }
  void offer(const Entry& e) {
    if (heap_.size() == kListSize) {
      if (!(e < heap_.front())) return;
      std::pop_heap(heap_.begin(), heap_.end());
      heap_.pop_back();
    }
    heap_.push_back(e);
    std::push_heap(heap_.begin(), heap_.end());
  }
  void merge(const BestArcs& o) {
    for (const Entry& e : o.heap_) offer(e);
  }
  bool empty() const { return heap_.empty(); }
  std::vector<Entry>& entries() { return heap_; }

 private:
  std::vector<Entry> heap_;
};

// Buffers of one scan: the chunk minima of a row segment and the chunks worth a scalar pass.
struct ScanScratch {
  std::vector<double> mins;
  std::vector<std::pair<double, index_t>> chunks;
};

// Offers the improving arcs of row i's columns [j0, j1). Vector passes take the minimum of
// every chunk; chunks are then visited best first, so the set's bound tightens at once and
// the scalar pass touches only the few chunks that hold a member of the final set.
template <class T>
void row_collect(const T* c, const double* pg, double fi, index_t i, index_t m, index_t j0,
                 index_t j1, BestArcs& best, std::vector<double>& mins,
                 std::vector<std::pair<double, index_t>>& chunks) {
  mins.resize(std::size_t(n_blocks(j1 - j0, kChunk)));
  chunk_minima(c, pg, fi, j0, j1, mins.data());
  chunks.clear();
  for (std::size_t k = 0; k < mins.size(); ++k)
    if (mins[k] < best.bound()) chunks.emplace_back(mins[k], j0 + index_t(k) * kChunk);
  std::sort(chunks.begin(), chunks.end());
  for (const auto& [low, k0] : chunks) {
    if (!(low < best.bound())) break;
    for (index_t j = k0, k1 = std::min(j1, k0 + kChunk); j < k1; ++j) {
      const double rc = transport_rc(c[j], pg[j], fi);
      if (rc < best.bound() && rc + rc_margin(double(c[j]), pg[j], fi) < 0)
        best.offer({rc, double(c[j]), i * m + j});
    }
  }
}

// First column of a row whose reduced cost is negative beyond round-off, or -1.
template <class T>
PYOT_MULTIVERSION index_t row_violation(const T* c, const double* pg, double fi, index_t m) {
  double worst = 0;
#pragma omp simd reduction(min : worst)
  for (index_t j = 0; j < m; ++j)
    worst = std::min(worst, transport_rc(c[j], pg[j], fi) + rc_margin(double(c[j]), pg[j], fi));
  if (!(worst < 0)) return -1;
  for (index_t j = 0; j < m; ++j)
    if (transport_rc(c[j], pg[j], fi) + rc_margin(double(c[j]), pg[j], fi) < 0) return j;
  return -1;
}

template <class T>
class NetworkSimplex {
 public:
  NetworkSimplex(MatrixView<T> cost, const double* a, const double* b, const Options& opt)
      : C_(cost), n_(cost.rows), m_(cost.cols), arcs_(n_ * m_), root_(int32_t(n_ + m_)) {
    require(n_ > 0 && m_ > 0, "network simplex: empty problem");
    require(n_ + m_ < std::numeric_limits<int32_t>::max(), "network simplex: too many nodes");
    threads_ = resolve_threads(opt.threads);
    policy_ = ScanPolicy(threads_);
    max_iter_ = opt.max_iter;
    block_ = std::max<index_t>(index_t(kBlockFactor * std::sqrt(double(arcs_))), 10);
    super_block_ = std::max(kSuperBlocks * block_, kMinSuperBlock);
    init_tree(a, b);
  }

  Result solve() {
    Result out;
    index_t iter = 0;
    bool optimal = false;
    while (iter < max_iter_) {
      Candidate in = find_entering();
      if (in.arc < 0) {
        // Pricing found nothing: re-derive the potentials exactly from the tree and verify
        // every arc; drift in the incremental updates can only delay this, never fake it.
        recompute_potentials();
        in = verify();
        if (in.arc < 0) {
          optimal = true;
          break;
        }
      }
      pivot(in);
      ++iter;
    }
    recompute_potentials(/*anchored=*/true);
    out.status = optimal ? Status::Converged : Status::MaxIter;
    out.n_iter = iter;
    collect(out);
    return out;
  }

 private:
  // --- arcs -------------------------------------------------------------------------------
  bool is_transport(index_t e) const { return e < arcs_; }
  double arc_cost(index_t e) const {
    if (is_transport(e)) return double(C_(e / m_, e % m_));
    return e - arcs_ < n_ ? 0.0 : art_cost_;
  }
  // --- start: every node hangs from the root by its artificial arc -------------------------
  void init_tree(const double* a, const double* b) {
    const index_t nodes = n_ + m_ + 1;
    parent_.assign(nodes, -1);
    pred_.assign(nodes, -1);
    up_.assign(nodes, 0);
    flow_.assign(nodes, 0.0);
    depth_.assign(nodes, 0);
    child_.assign(nodes, -1);
    next_.assign(nodes, -1);
    prev_.assign(nodes, -1);
    P_.assign(nodes, 0.0);
    double cmax = 0;
    double probe = 0;  // becomes NaN on any inf or NaN entry
    for (index_t i = 0; i < n_; ++i) {
      const T* row = C_.row(i);
      double row_max = 0;
#pragma omp simd reduction(max : row_max) reduction(+ : probe)
      for (index_t j = 0; j < m_; ++j) {
        row_max = std::max(row_max, std::abs(double(row[j])));
        probe += double(row[j]) - double(row[j]);
      }
      cmax = std::max(cmax, row_max);
    }
    require(probe == 0, "network simplex: the cost has a non-finite entry");
    art_cost_ = (cmax + 1) * double(n_ + m_ + 1);
    for (int32_t v = 0; v < root_; ++v) {
      const bool source = v < n_;
      parent_[v] = root_;
      pred_[v] = arcs_ + v;
      up_[v] = source;  // source -> root, root -> sink
      flow_[v] = source ? a[v] : b[v - n_];
      depth_[v] = 1;
      P_[v] = source ? 0.0 : -art_cost_;
      link_child(v, root_);
    }
  }

  // --- child lists ------------------------------------------------------------------------
  void link_child(int32_t v, int32_t p) {
    parent_[v] = p;
    prev_[v] = -1;
    next_[v] = child_[p];
    if (child_[p] >= 0) prev_[child_[p]] = v;
    child_[p] = v;
  }
  void unlink_child(int32_t v) {
    const int32_t p = parent_[v];
    if (prev_[v] >= 0) {
      next_[prev_[v]] = next_[v];
    } else {
      child_[p] = next_[v];
    }
    if (next_[v] >= 0) prev_[next_[v]] = prev_[v];
  }

  // --- pricing ------------------------------------------------------------------------------
  // Offers the improving arcs among [e0, e0 + count) (cyclic) to `best`.
  void scan(index_t e0, index_t count, BestArcs& best, ScanScratch& scratch) const {
    const double* pg = P_.data() + n_;
    while (count > 0) {
      const index_t i = e0 / m_, j0 = e0 % m_;
      const index_t j1 = std::min(m_, j0 + count);
      row_collect(C_.row(i), pg, P_[i], i, m_, j0, j1, best, scratch.mins, scratch.chunks);
      count -= j1 - j0;
      e0 = (i + 1 == n_ && j1 == m_) ? 0 : i * m_ + j1;
    }
  }

  // The same as scan(), split over `threads` (the best set does not depend on the split).
  void scan_parallel(index_t e0, index_t count, int threads, BestArcs& best) const {
    const int t = int(std::min<index_t>(threads, count / kMinParallelScan));
    if (t <= 1) return scan(e0, count, best, scratch_);
    std::vector<BestArcs> part(t);
    const index_t piece = (count + t - 1) / t;
    parallel_for(t, t, [&](index_t k) {
      const index_t start = k * piece, len = std::min(count - start, piece);
      ScanScratch local;
      if (len > 0) scan((e0 + start) % arcs_, len, part[k], local);
    });
    for (const BestArcs& p : part) best.merge(p);
  }

  // Refills the candidate list from the next block (or super-block) holding improving arcs.
  void refill() {
    BestArcs best;
    for (index_t scanned = 0, blocks = 0; scanned < arcs_ && best.empty(); ++blocks) {
      const bool serial = blocks < kSerialBlocks;
      const index_t len = std::min(arcs_ - scanned, serial ? block_ : super_block_);
      if (serial) {
        scan(next_arc_, len, best, scratch_);
      } else {
        const int threads = policy_.threads_for_next();
        const auto start = std::chrono::steady_clock::now();
        scan_parallel(next_arc_, len, threads, best);
        const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
        policy_.record(threads, len, took.count());
      }
      next_arc_ = (next_arc_ + len) % arcs_;
      scanned += len;
    }
    list_.swap(best.entries());
  }

  // Re-prices the list, drops arcs no longer improving, and takes out the best one.
  Candidate take_best() {
    size_t keep = 0, best = 0;
    for (const Entry& en : list_) {
      const index_t i = en.arc / m_, j = en.arc % m_;
      const double pg = P_[n_ + j], fi = P_[i];
      const double rc = (en.cost + pg) - fi;
      if (!(rc + rc_margin(en.cost, pg, fi) < 0)) continue;
      list_[keep] = {rc, en.cost, en.arc};
      if (list_[keep] < list_[best]) best = keep;
      ++keep;
    }
    list_.resize(keep);
    if (keep == 0) return {0, -1};
    const Entry chosen = list_[best];
    list_[best] = list_.back();
    list_.pop_back();
    return {chosen.rc, chosen.arc};
  }

  Candidate find_entering() {
    Candidate in = take_best();
    if (in.arc >= 0) return in;
    refill();
    return take_best();
  }

  // Full check with exact potentials: the first arc whose reduced cost is negative beyond
  // round-off (the test of pricing), or none.
  Candidate verify() const {
    const index_t rows_per_block = std::max<index_t>(1, kMinParallelScan / m_);
    std::vector<index_t> found(n_blocks(n_, rows_per_block), -1);
    const double* pg = P_.data() + n_;
    const int threads = arcs_ >= kMinSuperBlock ? threads_ : 1;
    for_blocks(n_, rows_per_block, threads, [&](index_t i0, index_t i1) {
      for (index_t i = i0; i < i1; ++i) {
        const index_t j = row_violation(C_.row(i), pg, P_[i], m_);
        if (j >= 0) {
          found[i0 / rows_per_block] = i * m_ + j;
          return;
        }
      }
    });
    for (index_t e : found) {
      if (e < 0) continue;
      const T c = C_(e / m_, e % m_);
      return {transport_rc(c, pg[e % m_], P_[e / m_]), e};
    }
    return {0, -1};
  }

  // --- pivot ------------------------------------------------------------------------------
  int32_t join_node(int32_t u, int32_t v) const {
    while (depth_[u] > depth_[v]) u = parent_[u];
    while (depth_[v] > depth_[u]) v = parent_[v];
    while (u != v) {
      u = parent_[u];
      v = parent_[v];
    }
    return u;
  }

  void pivot(const Candidate& in) {
    // Push theta units along the cycle first -> second (the entering arc) -> join -> first.
    const int32_t first = int32_t(in.arc / m_), second = int32_t(n_ + in.arc % m_);
    const int32_t join = join_node(first, second);
    // Ratio test with the strongly feasible rule: the blocking arc met last when the cycle is
    // walked from the join node (strict on the first path, non-strict on the second).
    double theta = kInf;
    int32_t out = -1;
    bool out_on_first = true;
    for (int32_t w = first; w != join; w = parent_[w])
      if (up_[w] && flow_[w] < theta) theta = flow_[w], out = w, out_on_first = true;
    for (int32_t w = second; w != join; w = parent_[w])
      if (!up_[w] && flow_[w] <= theta) theta = flow_[w], out = w, out_on_first = false;
    if (out < 0) throw std::logic_error("network simplex: unbounded cycle");
    if (theta > 0) {
      for (int32_t w = first; w != join; w = parent_[w]) flow_[w] += up_[w] ? -theta : theta;
      for (int32_t w = second; w != join; w = parent_[w]) flow_[w] += up_[w] ? theta : -theta;
    }
    // The subtree cut off by the leaving arc is re-rooted at the entering arc's end on its side
    // and hung from the other end.
    const int32_t u_in = out_on_first ? first : second;
    const int32_t v_in = out_on_first ? second : first;
    reroot(u_in, v_in, out, in.arc, out_on_first, theta);
    // Potentials of that subtree move so the entering arc gets a zero reduced cost.
    shift_subtree(u_in, out_on_first ? in.rc : -in.rc);
  }

  void reroot(int32_t u_in, int32_t v_in, int32_t u_out, index_t arc, bool arc_up, double theta) {
    path_.clear();
    for (int32_t w = u_in;; w = parent_[w]) {
      path_.push_back(w);
      if (w == u_out) break;
    }
    for (int32_t w : path_) unlink_child(w);
    // Walking down the reversed path, each node inherits its old child's arc, reversed.
    index_t carry_arc = arc;
    uint8_t carry_up = arc_up;
    double carry_flow = theta;
    int32_t new_parent = v_in;
    for (int32_t w : path_) {
      const index_t old_arc = pred_[w];
      const uint8_t old_up = up_[w];
      const double old_flow = flow_[w];
      pred_[w] = carry_arc;
      up_[w] = carry_up;
      flow_[w] = carry_flow;
      link_child(w, new_parent);
      carry_arc = old_arc;
      carry_up = !old_up;
      carry_flow = old_flow;
      new_parent = w;
    }
  }

  // Adds sigma to P over the subtree of `top` (preorder walk) and refreshes depths.
  void shift_subtree(int32_t top, double sigma) {
    auto visit = [&](int32_t w) {
      depth_[w] = depth_[parent_[w]] + 1;
      P_[w] += sigma;
    };
    visit(top);
    for (int32_t w = top;;) {
      if (child_[w] >= 0) {
        w = child_[w];
      } else {
        while (w != top && next_[w] < 0) w = parent_[w];
        if (w == top) break;
        w = next_[w];
      }
      visit(w);
    }
  }

  // Exact potentials from the tree: every tree arc gets a zero reduced cost. With `anchored`,
  // the root's arcs count as free when they are all of one kind: that shifts each subtree
  // hanging from the root by the same constant (reduced costs unchanged) and drops the
  // artificial cost A from the potentials, so they keep their full precision.
  void recompute_potentials(bool anchored = false) {
    bool one_kind = true;
    for (int32_t w = child_[root_]; w >= 0; w = next_[w]) one_kind &= up_[w] == up_[child_[root_]];
    const bool free_root_arcs = anchored && one_kind;
    P_[root_] = 0;
    depth_[root_] = 0;
    for (int32_t w = child_[root_]; w >= 0;) {
      const double c = parent_[w] == root_ && free_root_arcs ? 0.0 : arc_cost(pred_[w]);
      P_[w] = up_[w] ? P_[parent_[w]] + c : P_[parent_[w]] - c;
      depth_[w] = depth_[parent_[w]] + 1;
      if (child_[w] >= 0) {
        w = child_[w];
      } else {
        while (w != root_ && next_[w] < 0) w = parent_[w];
        if (w == root_) break;
        w = next_[w];
      }
    }
  }

  void collect(Result& out) const {
    out.f.assign(P_.begin(), P_.begin() + n_);
    out.g.resize(m_);
    for (index_t j = 0; j < m_; ++j) out.g[j] = -P_[n_ + j];
    for (int32_t v = 0; v < root_; ++v) {
      const index_t e = pred_[v];
      if (!is_transport(e) || !(flow_[v] > 0)) continue;
      out.rows.push_back(e / m_);
      out.cols.push_back(e % m_);
      out.mass.push_back(flow_[v]);
      out.value += flow_[v] * double(C_(e / m_, e % m_));
    }
  }

  MatrixView<T> C_;
  index_t n_, m_, arcs_;
  int32_t root_;
  int threads_ = 1;
  index_t max_iter_ = 0;
  index_t block_ = 10;
  index_t super_block_ = 10;
  index_t next_arc_ = 0;
  double art_cost_ = 0;
  std::vector<int32_t> parent_, depth_, child_, next_, prev_, path_;
  std::vector<index_t> pred_;
  std::vector<uint8_t> up_;
  std::vector<Entry> list_;
  mutable ScanScratch scratch_;  // buffers of the serial scans (reused: pricing is hot)
  ScanPolicy policy_{1};
  std::vector<double> flow_, P_;
};

// Block of the vector search for a value (first_equal).
constexpr index_t kLanes = 8;

// The first j < n with x[j] == value (n when none): blocks of kLanes compared in one vector
// pass each, then the block holding it scanned.
template <class F>
PYOT_MULTIVERSION index_t first_equal(const F* x, index_t n, F value) {
  const index_t body = n - n % kLanes;
  for (index_t j0 = 0; j0 < body; j0 += kLanes) {
    int hit = 0;
#pragma omp simd reduction(| : hit)
    for (index_t l = 0; l < kLanes; ++l) hit |= x[j0 + l] == value;
    if (hit)
      for (index_t j = j0;; ++j)
        if (x[j] == value) return j;
  }
  for (index_t j = body; j < n; ++j)
    if (x[j] == value) return j;
  return n;
}

// Column minima, one row at a time: v_j = min(v_j, C_ij), arg_j = i where C_ij is smaller
// (the first row among equals). Returns the sum of C_ij - C_ij (NaN on a non-finite entry).
template <class T>
PYOT_MULTIVERSION double column_minima(const T* row, index_t n, index_t i, double* v,
                                       index_t* arg) {
  double probe = 0;
#pragma omp simd reduction(+ : probe)
  for (index_t j = 0; j < n; ++j) {
    const double c = double(row[j]);
    probe += c - c;
    const bool lower = c < v[j];
    arg[j] = lower ? i : arg[j];
    v[j] = lower ? c : v[j];
  }
  return probe;
}

// h_j = C_ij - v_j for j < n; returns their least.
template <class T>
PYOT_MULTIVERSION double reduced_row(const T* row, const double* v, index_t n, double* h) {
  double low = kInf;
#pragma omp simd reduction(min : low)
  for (index_t j = 0; j < n; ++j) {
    h[j] = double(row[j]) - v[j];
    low = std::min(low, h[j]);
  }
  return low;
}

// The least h_j over j < n, j != skip (inf when there is none).
template <class F>
PYOT_MULTIVERSION F least_except(const F* h, index_t n, index_t skip) {
  F low = std::numeric_limits<F>::infinity();
#pragma omp simd reduction(min : low)
  for (index_t j = 0; j < skip; ++j) low = std::min(low, h[j]);
#pragma omp simd reduction(min : low)
  for (index_t j = skip + 1; j < n; ++j) low = std::min(low, h[j]);
  return low;
}

// One relaxation of the shortest-path search: every column is reached through row i at
// C_ij - w_j - h when that is shorter than dist_j (then pred_j = i). w holds the column prices
// with -inf at the settled columns, whose distance is +inf: they are never relaxed nor picked,
// and the pass runs branch-free over all columns. With first, dist is set to C_ij - w_j.
// Returns the next column to settle (least distance, first among equals) and its distance.
template <class T, bool first>
PYOT_MULTIVERSION index_t relax(const T* row, const double* w, index_t n, index_t i, double h,
                                double* dist, index_t* pred, double& least) {
  double low = kInf;
#pragma omp simd reduction(min : low)
  for (index_t j = 0; j < n; ++j) {
    const double r = double(row[j]) - w[j] - h;
    const double cur = dist[j];
    const bool shorter = first || r < cur;
    const double nd = shorter ? r : cur;
    dist[j] = nd;
    pred[j] = shorter ? i : pred[j];
    low = std::min(low, nd);
  }
  least = low;
  return first_equal(dist, n, low);
}

// When the shortest-path searches beat the network simplex on a uniform square problem
// (measured on uniform clouds, squared Euclidean costs, one thread): always up to
// kAssignmentSmall points (3x faster at d = 64, even at d = 2); above it only while the
// reductions leave at most n / kFreeFraction rows free (each search costs up to n vector
// passes): 12 to 16% stay free at d = 8 to 64, where the searches win 2x at n = 1000 to 2000,
// and about 30% at d = 2, where they lose up to 1.7x; never above kAssignmentMax, where the
// simplex's pricing also runs on threads.
constexpr index_t kAssignmentSmall = 512, kAssignmentMax = 2048, kFreeFraction = 5;
inline bool worth_searching(index_t n, index_t free_rows) {
  return n <= kAssignmentSmall || free_rows * kFreeFraction <= n;
}

// The assignment problem: min sum_i C[i, x_i] over the permutations x of a square cost, the
// exact OT problem between equal uniform weights (its optimal vertex is a permutation). Dense
// shortest augmenting paths after Jonker and Volgenant (1987): column reduction with reduction
// transfer, two rounds of augmenting row reduction, then one Dijkstra search per row still free.
// Column prices v are kept so that every assigned row's column is one of least reduced cost
// C_ij - v_j; the row potentials u_i = C[i, x_i] - v[x_i] then give u_i + v_j <= C_ij with
// equality on the assignment, an exact optimal dual. On small and medium uniform square
// problems (every mini-batch of m-OT and OT-CFM) it is several times faster than the network
// simplex, whose pivots mostly move zero flow there (the problem is fully degenerate).
template <class T>
class Assignment {
 public:
  explicit Assignment(MatrixView<T> cost) : C_(cost), n_(cost.rows) {
    require(n_ > 0 && cost.cols == n_, "assignment: the cost must be square and non-empty");
  }

  // Solves; returns the number of shortest-path searches (at most n). With give_up, returns
  // -1 instead when the reductions leave too many rows free for the searches to beat the
  // network simplex (see worth_searching).
  index_t solve(bool give_up = false) {
    x_.assign(std::size_t(n_), -1);
    y_.assign(std::size_t(n_), -1);
    v_.assign(std::size_t(n_), kInf);
    d_.resize(std::size_t(n_));
    pred_.resize(std::size_t(n_));
    std::vector<index_t> free = column_reduction();
    for (int round = 0; round < 2 && !free.empty(); ++round) free = row_reduction(free);
    if (give_up && !worth_searching(n_, index_t(free.size()))) return -1;
    for (const index_t f : free) augment(f);
    return index_t(free.size());
  }
  index_t column(index_t i) const { return x_[std::size_t(i)]; }
  double price(index_t j) const { return v_[std::size_t(j)]; }

 private:
  // v_j = min_i C_ij; each column goes to its least row unless that row already took a
  // cheaper column; rows that got exactly one column pass their slack on to it (reduction
  // transfer). Returns the rows left free.
  std::vector<index_t> column_reduction() {
    std::vector<index_t> arg(std::size_t(n_), 0), matches(std::size_t(n_), 0), free;
    double probe = 0;  // NaN on any inf or NaN entry
    for (index_t i = 0; i < n_; ++i)
      probe += column_minima(C_.row(i), n_, i, v_.data(), arg.data());
    require(probe == 0, "assignment: the cost has a non-finite entry");
    for (index_t j = n_ - 1; j >= 0; --j) {
      const index_t i = arg[j];
      if (++matches[i] == 1) {
        x_[i] = j, y_[j] = i;
      } else if (v_[j] < v_[x_[i]]) {
        y_[x_[i]] = -1;
        x_[i] = j, y_[j] = i;
      }
    }
    for (index_t i = 0; i < n_; ++i) {
      if (matches[i] == 0) {
        free.push_back(i);
      } else if (matches[i] == 1) {
        const index_t j1 = x_[i];
        reduced_row(C_.row(i), v_.data(), n_, d_.data());
        const double least = least_except(d_.data(), n_, j1);
        if (least < kInf) v_[j1] -= least;
      }
    }
    return free;
  }

  // Augmenting row reduction: each free row takes its least column, lowering that column's
  // price to its second least reduced cost, and frees the column's previous row (worked on
  // next when the price fell). Round-off can stall the price descent, so the steps are capped;
  // the rows then still free go to the shortest-path searches. Returns them.
  std::vector<index_t> row_reduction(std::vector<index_t> free) {
    std::vector<index_t> left;
    // Steps per round: measured best (within noise) from n = 64 to 2000, d = 2 to 3072; the
    // vector searches are cheap enough that longer reductions do not pay.
    const index_t cap = n_ / 2;
    index_t steps = 0;
    for (std::size_t k = 0; k < free.size();) {
      if (++steps > cap) {
        left.insert(left.end(), free.begin() + std::ptrdiff_t(k), free.end());
        break;
      }
      const index_t i = free[k++];
      // The least and second least reduced cost of row i, first columns among equals.
      const double u1 = reduced_row(C_.row(i), v_.data(), n_, d_.data());
      index_t j1 = first_equal(d_.data(), n_, u1);
      const double u2 = least_except(d_.data(), n_, j1);
      index_t j2 = u2 == u1 ? j1 + 1 + first_equal(d_.data() + j1 + 1, n_ - j1 - 1, u2)
                            : first_equal(d_.data(), n_, u2);
      if (j2 >= n_) j2 = j1;
      index_t i0 = y_[j1];
      const bool lower = u1 < u2 && u2 < kInf;
      if (lower) {
        v_[j1] -= u2 - u1;
      } else if (i0 >= 0) {
        j1 = j2;
        i0 = y_[j1];
      }
      if (i0 >= 0) x_[i0] = -1;
      x_[i] = j1, y_[j1] = i;
      if (i0 >= 0) {
        if (lower) {
          free[--k] = i0;
        } else {
          left.push_back(i0);
        }
      }
    }
    return left;
  }

  // One Dijkstra search from the free row f over the reduced costs C_ij - v_j (non-negative
  // along assigned cells' rows up to their row minimum): columns are settled by least distance
  // until a free one is reached; the settled columns' prices then drop by their slack to it and
  // the path is augmented. Every pass is a full vector pass over the columns (settled ones are
  // masked), cheaper than a scalar pass over the ones still open.
  void augment(index_t f) {
    w_ = v_;
    double least = 0;
    index_t j = relax<T, true>(C_.row(f), w_.data(), n_, f, 0.0, d_.data(), pred_.data(), least);
    settled_.clear();
    near_.clear();
    while (y_[j] >= 0) {
      settled_.push_back(j);
      near_.push_back(least);
      d_[j] = kInf;
      w_[j] = -kInf;
      const index_t i = y_[j];
      const T* row = C_.row(i);
      const double h = (double(row[j]) - v_[j]) - least;
      j = relax<T, false>(row, w_.data(), n_, i, h, d_.data(), pred_.data(), least);
    }
    for (std::size_t k = 0; k < settled_.size(); ++k) v_[settled_[k]] += near_[k] - least;
    for (index_t end = j;;) {
      const index_t i = pred_[end];
      y_[end] = i;
      std::swap(end, x_[i]);
      if (i == f) break;
    }
  }

  MatrixView<T> C_;
  index_t n_;
  std::vector<index_t> x_, y_, pred_, settled_;
  std::vector<double> v_, w_, d_, near_;
};

// The exact plan of an assignment problem: weight w on each (i, x_i), potentials f_i = u_i
// and g_j = v_j. False (out untouched) when the searches would not pay (worth_searching).
template <class T>
bool solve_assignment(MatrixView<T> C, double w, Result& out) {
  Assignment<T> lap(C);
  const index_t searches = lap.solve(/*give_up=*/true);
  if (searches < 0) return false;
  out = Result();
  out.n_iter = searches;
  const index_t n = C.rows;
  out.f.resize(std::size_t(n));
  out.g.resize(std::size_t(n));
  out.rows.resize(std::size_t(n));
  out.cols.resize(std::size_t(n));
  out.mass.assign(std::size_t(n), w);
  for (index_t j = 0; j < n; ++j) out.g[j] = lap.price(j);
  for (index_t i = 0; i < n; ++i) {
    const index_t j = lap.column(i);
    const double c = double(C(i, j));
    out.f[i] = c - out.g[j];
    out.rows[i] = i;
    out.cols[i] = j;
    out.value += w * c;
  }
  return true;
}

// Whether a (compacted) problem goes to the assignment solver: square with equal weights on
// each side, at most kAssignmentMax points. The shortest-path searches number at most n, so a
// pivot cap below n keeps the network simplex (and its MaxIter semantics).
inline bool is_assignment(index_t n, index_t m, const std::vector<double>& a,
                          const std::vector<double>& b, index_t max_iter) {
  if (n != m || n > kAssignmentMax || max_iter < n) return false;
  for (const double w : a)
    if (w != a[0]) return false;
  for (const double w : b)
    if (w != b[0]) return false;
  return true;
}

// Keeps the rows and columns of positive weight (copying the cost only when some are dropped).
template <class T>
struct ActiveProblem {
  std::vector<index_t> rows, cols;
  std::vector<T> storage;
  std::vector<double> a, b;
  MatrixView<T> cost;
};

template <class T>
ActiveProblem<T> active_problem(MatrixView<T> C, const double* a, const double* b) {
  ActiveProblem<T> p;
  double sa = 0, sb = 0;
  for (index_t i = 0; i < C.rows; ++i)
    if (a[i] > 0) p.rows.push_back(i), p.a.push_back(a[i]), sa += a[i];
  for (index_t j = 0; j < C.cols; ++j)
    if (b[j] > 0) p.cols.push_back(j), p.b.push_back(b[j]), sb += b[j];
  require(sa > 0 && sb > 0, "emd: the weights must have a positive sum");
  // The two masses agree to the caller's tolerance; make them agree exactly.
  for (double& x : p.b) x *= sa / sb;
  const index_t n = index_t(p.rows.size()), m = index_t(p.cols.size());
  if (n == C.rows && m == C.cols) {
    p.cost = C;
    return p;
  }
  p.storage.resize(n * m);
  for (index_t r = 0; r < n; ++r) {
    const T* src = C.row(p.rows[r]);
    T* dst = p.storage.data() + r * m;
    for (index_t c = 0; c < m; ++c) dst[c] = src[p.cols[c]];
  }
  p.cost = MatrixView<T>(p.storage.data(), n, m);
  return p;
}

// Potentials of dropped (zero-weight) nodes by c-transform, which keeps f (+) g <= C.
template <class T>
void complete_potentials(MatrixView<T> C, const double* a, const double* b, Result& r) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  for (index_t i = 0; i < C.rows; ++i) {
    if (a[i] > 0) continue;
    double best = inf;
    for (index_t j = 0; j < C.cols; ++j)
      if (b[j] > 0) best = std::min(best, double(C(i, j)) - r.g[j]);
    r.f[i] = best;
  }
  for (index_t j = 0; j < C.cols; ++j) {
    if (b[j] > 0) continue;
    double best = inf;
    for (index_t i = 0; i < C.rows; ++i) best = std::min(best, double(C(i, j)) - r.f[i]);
    r.g[j] = best;
  }
}

// Fixes the free constant of the potentials by <a, f> = <b, g>.
inline void balance_potentials(const double* a, const double* b, Result& r) {
  double af = 0, bg = 0, mass = 0;
  for (size_t i = 0; i < r.f.size(); ++i)
    if (a[i] > 0) af += a[i] * r.f[i], mass += a[i];
  for (size_t j = 0; j < r.g.size(); ++j)
    if (b[j] > 0) bg += b[j] * r.g[j];
  const double shift = (af - bg) / (2 * mass);
  for (double& x : r.f) x -= shift;
  for (double& x : r.g) x += shift;
}

}  // namespace detail

// Solves min <P, C> over the couplings of a and b (equal masses, non-negative, positive sum).
template <class T>
Result emd(MatrixView<T> C, const double* a, const double* b, const Options& opt) {
  auto p = detail::active_problem(C, a, b);
  Result r;
  const bool assigned = detail::is_assignment(p.cost.rows, p.cost.cols, p.a, p.b, opt.max_iter) &&
                        detail::solve_assignment(p.cost, p.a[0], r);
  if (!assigned) r = detail::NetworkSimplex<T>(p.cost, p.a.data(), p.b.data(), opt).solve();
  if (!p.storage.empty()) {
    // Map the compacted problem back to the caller's indices.
    std::vector<double> f(C.rows, 0.0), g(C.cols, 0.0);
    for (size_t k = 0; k < p.rows.size(); ++k) f[p.rows[k]] = r.f[k];
    for (size_t k = 0; k < p.cols.size(); ++k) g[p.cols[k]] = r.g[k];
    r.f = std::move(f);
    r.g = std::move(g);
    for (index_t& i : r.rows) i = p.rows[i];
    for (index_t& j : r.cols) j = p.cols[j];
    detail::complete_potentials(C, a, b, r);
  }
  detail::balance_potentials(a, b, r);
  return r;
}

// B independent problems (cost (B, n, m), weights (B, n) and (B, m)), one per thread.
template <class T>
std::vector<Result> emd_batch(const T* C, index_t batch, index_t n, index_t m, const double* a,
                              const double* b, const Options& opt) {
  std::vector<Result> out(batch);
  Options one = opt;
  const int threads = resolve_threads(opt.threads);
  one.threads = batch >= threads ? 1 : std::max(1, threads / int(batch));
  parallel_for(batch, threads, [&](index_t k) {
    out[k] = emd(MatrixView<T>(C + k * n * m, n, m), a + k * n, b + k * m, one);
  });
  return out;
}

// W_p^p on the line between the columns of u (n x k) and v (m x k), both row-major: out[c]
// for column c. Weights wu (n) and wv (m) are probability weights shared by the columns, or
// null for uniform. The 2k sorts run in parallel, then the k merges (ALGORITHMS 3.2).
template <class T>
void wasserstein_1d(const T* u, index_t n, const T* v, index_t m, index_t k, const double* wu,
                    const double* wv, double p, int threads, double* out) {
  require(n > 0 && m > 0 && k > 0, "wasserstein_1d: empty samples");
  const bool weighted = wu != nullptr || wv != nullptr;
  // One weighted side makes both weighted: the other gets explicit uniform weights.
  std::vector<double> uniform_u(weighted && !wu ? n : 0, 1.0 / double(n));
  std::vector<double> uniform_v(weighted && !wv ? m : 0, 1.0 / double(m));
  if (!uniform_u.empty()) wu = uniform_u.data();
  if (!uniform_v.empty()) wv = uniform_v.data();
  threads = resolve_threads(threads);
  // Sorted columns (and their cumulative weights), side by side: u's k columns, then v's.
  std::vector<T> sorted(std::size_t((n + m) * k));
  std::vector<double> cumulative(weighted ? sorted.size() : 0);
  std::vector<line::SortScratch<T>> scratch(static_cast<std::size_t>(threads));
  parallel_for(2 * k, threads, [&](index_t task) {
    const bool first = task < k;
    const index_t c = first ? task : task - k, len = first ? n : m;
    const T* src = first ? u : v;
    const index_t offset = first ? c * n : k * n + c * m;
    line::SortScratch<T>& s = scratch[std::size_t(thread_id())];
    s.reserve(len, weighted);
    T* col = sorted.data() + offset;
    for (index_t r = 0; r < len; ++r) col[r] = src[r * k + c];
    if (weighted) {
      line::sort_with_weights(col, first ? wu : wv, len, 1.0, s, col, cumulative.data() + offset);
    } else {
      line::sort_values(col, len, s);
    }
  });
  line::dispatch_power(p, [&](const auto& h) {
    parallel_for(k, threads, [&](index_t c) {
      const T* su = sorted.data() + c * n;
      const T* sv = sorted.data() + k * n + c * m;
      out[c] = weighted ? line::wpp_sorted(su, cumulative.data() + c * n, n, sv,
                                           cumulative.data() + k * n + c * m, m, h)
                        : line::wpp_sorted_uniform(su, n, sv, m, h);
    });
    return 0;
  });
}

}  // namespace pyot::exact
