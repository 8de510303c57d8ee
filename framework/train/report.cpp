#include "train/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <vector>

namespace graft::train {
namespace {

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB"};
  int u = 0;
  while (bytes >= 1024 && u < 3) bytes /= 1024, ++u;
  return u ? fmt::format("{:.1f} {}", bytes, units[u]) : fmt::format("{:.0f} B", bytes);
}

std::string escape_xml(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}

}  // namespace

nlohmann::json seed_summary(const nlohmann::json& per_seed) {
  std::map<std::string, std::vector<double>> values;
  std::size_t n = 0;
  for (const auto& s : per_seed) {
    if (!s.contains("best")) continue;
    ++n;
    for (auto it = s.at("best").begin(); it != s.at("best").end(); ++it) values[it.key()].push_back(it->get<double>());
  }
  nlohmann::json mean = nlohmann::json::object(), std = nlohmann::json::object();
  for (const auto& [metric, v] : values) {
    double m = 0;
    for (double x : v) m += x;
    m /= static_cast<double>(v.size());
    double ss = 0;
    for (double x : v) ss += (x - m) * (x - m);
    mean[metric] = m;
    std[metric] = v.size() > 1 ? std::sqrt(ss / static_cast<double>(v.size() - 1)) : 0.0;
  }
  return {{"n", n}, {"mean", mean}, {"std", std}};
}

std::string comparison_table(const nlohmann::json& runs, bool markdown) {
  const std::vector<std::string> header = {"method", "trainable", "% of backbone", "dev metric", "lr", "train time",
                                           "peak memory", "adapter file"};
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : runs) {
    if (r.contains("error")) {
      rows.push_back({r.value("method", "?"), "-", "-", "failed: " + r.value("error", std::string()), "-", "-", "-", "-"});
      continue;
    }
    const std::string headline = r.at("headline");
    rows.push_back({r.at("method"), fmt::format("{}", r.at("trainable_parameters").get<std::int64_t>()),
                    fmt::format("{:.3f}%", r.at("trainable_percent").get<double>()),
                    r.contains("seed_summary")
                        ? fmt::format("{} {:.4f} ± {:.4f} ({} seed{})", headline,
                                      r["seed_summary"]["mean"].value(headline, 0.0), r["seed_summary"]["std"].value(headline, 0.0),
                                      r["seed_summary"].value("n", 0), r["seed_summary"].value("n", 0) == 1 ? "" : "s")
                        : fmt::format("{} {:.4f}", headline, r.at("best").at(headline).get<double>()),
                    // A swept lr says how many were tried (compare --lr-scales).
                    r.contains("lr_sweep") ? fmt::format("{:.3g} (best of {})", r.value("lr", 0.0), r.at("lr_sweep").size())
                                           : fmt::format("{:.3g}", r.value("lr", 0.0)),
                    fmt::format("{:.0f} s", r.at("train_seconds").get<double>()),
                    fmt::format("{:.0f} MiB", r.at("peak_memory_mib").get<double>()),
                    human_bytes(r.at("adapter_bytes").get<double>())});
  }
  std::vector<std::size_t> width(header.size());
  for (std::size_t c = 0; c < header.size(); ++c) {
    width[c] = header[c].size();
    for (const auto& row : rows) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    out += markdown ? "|" : "";
    for (std::size_t c = 0; c < cells.size(); ++c)
      out += markdown ? fmt::format(" {:<{}} |", cells[c], width[c]) : fmt::format("{:<{}}  ", cells[c], width[c]);
    out += "\n";
  };
  line(header);
  std::vector<std::string> rule;
  for (auto w : width) rule.push_back(std::string(w, '-'));
  line(rule);
  for (const auto& row : rows) line(row);
  return out;
}

std::string comparison_svg(const nlohmann::json& runs, const std::string& title) {
  struct Point {
    std::string label;
    double x, y;
  };
  std::vector<Point> points;
  std::string metric;
  for (const auto& r : runs) {
    if (r.contains("error")) continue;
    metric = r.at("headline");
    const double y = r.contains("seed_summary") ? r["seed_summary"]["mean"].value(metric, 0.0) : r.at("best").at(metric).get<double>();
    points.push_back({r.at("method"), std::log10(std::max(r.at("trainable_percent").get<double>(), 1e-4)), y});
  }
  const double W = 720, H = 440, left = 70, right = 30, top = 50, bottom = 60;
  double x0 = -3, x1 = 2, y0 = 0, y1 = 1;
  if (!points.empty()) {
    x0 = std::floor(std::min_element(points.begin(), points.end(), [](auto& a, auto& b) { return a.x < b.x; })->x);
    x1 = std::ceil(std::max_element(points.begin(), points.end(), [](auto& a, auto& b) { return a.x < b.x; })->x);
    if (x1 <= x0) x1 = x0 + 1;
    y0 = std::min_element(points.begin(), points.end(), [](auto& a, auto& b) { return a.y < b.y; })->y;
    y1 = std::max_element(points.begin(), points.end(), [](auto& a, auto& b) { return a.y < b.y; })->y;
    const double pad = std::max((y1 - y0) * 0.15, 0.01);
    y0 -= pad, y1 += pad;
  }
  auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * (W - left - right); };
  auto py = [&](double y) { return H - bottom - (y - y0) / (y1 - y0) * (H - top - bottom); };
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"28\" font-size=\"15\" font-weight=\"bold\">{3}</text>\n",
      W, H, left, escape_xml(title));
  for (int d = static_cast<int>(x0); d <= static_cast<int>(x1); ++d) {  // decades of trainable %
    svg += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#ddd\"/>\n", px(d), top, H - bottom);
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}%</text>\n", px(d), H - bottom + 18,
                       d >= 0 ? fmt::format("{:.0f}", std::pow(10, d)) : fmt::format("{:g}", std::pow(10, d)));
  }
  for (int i = 0; i <= 4; ++i) {
    const double y = y0 + (y1 - y0) * i / 4;
    svg += fmt::format("<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#eee\"/>\n", left, py(y), W - right, py(y));
    svg += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:.3f}</text>\n", left - 6, py(y) + 4, y);
  }
  svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444\"/>\n", left, top,
                     W - left - right, H - top - bottom);
  svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">trainable parameters, % of the backbone (log scale)</text>\n",
                     (left + W - right) / 2, H - 18);
  svg += fmt::format("<text transform=\"translate(18 {:.1f}) rotate(-90)\" text-anchor=\"middle\">dev {}</text>\n",
                     (top + H - bottom) / 2, escape_xml(metric));
  for (const auto& p : points) {
    svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"5\" fill=\"#1f77b4\"/>\n", px(p.x), py(p.y));
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n", px(p.x) + 8, py(p.y) - 6, escape_xml(p.label));
  }
  return svg + "</svg>\n";
}

}  // namespace graft::train
