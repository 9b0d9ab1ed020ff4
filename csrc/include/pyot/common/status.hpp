// Outcome of an iterative solve; Python turns MaxIter into converged=False plus a warning.
#pragma once

namespace pyot {
enum class Status : int { Converged = 0, MaxIter = 1, NotFinite = 2 };
}  // namespace pyot
