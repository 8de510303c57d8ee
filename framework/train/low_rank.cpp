// truncated_svd (train/adapter_merge.h) on Eigen (Debian's libeigen3-dev, header-only):
// the one file that includes it.
#include <Eigen/SVD>
#include <cmath>

#include "train/adapter_merge.h"

namespace graft {

void truncated_svd(const std::vector<double>& m, std::int64_t rows, std::int64_t cols, std::int64_t rank,
                   std::vector<double>& us, std::vector<double>& vh) {
  using Matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Eigen::Map<const Matrix> a(m.data(), rows, cols);
  const Eigen::BDCSVD<Eigen::MatrixXd> svd(a, Eigen::ComputeThinU | Eigen::ComputeThinV);
  const Eigen::MatrixXd& U = svd.matrixU();
  const Eigen::MatrixXd& V = svd.matrixV();
  const Eigen::VectorXd& S = svd.singularValues();
  us.assign(static_cast<std::size_t>(rows * rank), 0.0);
  vh.assign(static_cast<std::size_t>(rank * cols), 0.0);
  for (std::int64_t k = 0; k < rank && k < S.size(); ++k) {
    Eigen::Index largest = 0;
    V.col(k).cwiseAbs().maxCoeff(&largest);
    const double sign = V(largest, k) < 0 ? -1.0 : 1.0;
    for (std::int64_t i = 0; i < rows; ++i) us[static_cast<std::size_t>(i * rank + k)] = sign * U(i, k) * S(k);
    for (std::int64_t j = 0; j < cols; ++j) vh[static_cast<std::size_t>(k * cols + j)] = sign * V(j, k);
  }
}

}  // namespace graft
