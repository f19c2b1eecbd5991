#include "simulator/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

namespace gpuslice::simulator {
namespace {

std::string Fixed(double value, int digits) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", digits, value);
  return buffer;
}

// Renders rows as columns padded to their widest cell; the first row is the header.
std::string Columns(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& row : rows) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::ostringstream out;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    for (std::size_t i = 0; i < rows[r].size(); ++i) {
      out << rows[r][i];
      if (i + 1 < rows[r].size()) out << std::string(width[i] - rows[r][i].size() + 2, ' ');
    }
    out << '\n';
    if (r == 0) {
      std::size_t total = 0;
      for (const std::size_t w : width) total += w + 2;
      out << std::string(total > 2 ? total - 2 : 0, '-') << '\n';
    }
  }
  return out.str();
}

void MeanSd(const std::vector<double>& values, double* mean, double* sd) {
  *mean = 0;
  *sd = 0;
  if (values.empty()) return;
  for (const double v : values) *mean += v;
  *mean /= static_cast<double>(values.size());
  if (values.size() < 2) return;
  double sq = 0;
  for (const double v : values) sq += (v - *mean) * (v - *mean);
  *sd = std::sqrt(sq / static_cast<double>(values.size() - 1));
}

constexpr const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                   "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};

std::string EscapeXml(std::string_view text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace

std::vector<PolicySummary> Summarize(const std::vector<FillResult>& results) {
  std::vector<PolicySummary> summaries;
  std::map<std::string, std::vector<const FillResult*>> by_policy;
  for (const FillResult& r : results) {
    if (!by_policy.contains(r.policy)) {
      PolicySummary summary;
      summary.policy = r.policy;
      summaries.push_back(std::move(summary));
    }
    by_policy[r.policy].push_back(&r);
  }
  for (PolicySummary& s : summaries) {
    const auto& runs = by_policy[s.policy];
    s.runs = runs.size();
    std::vector<double> at100, at_end;
    double decision_sum = 0;
    double cpu_sum = 0;
    std::size_t decisions = 0;
    std::size_t points = SIZE_MAX;
    for (const FillResult* r : runs) {
      at100.push_back(r->unallocated_at_100);
      at_end.push_back(r->unallocated_at_end);
      decision_sum += r->decisions.mean_us * static_cast<double>(r->decisions.decisions);
      decisions += r->decisions.decisions;
      s.decision_p99_us = std::max(s.decision_p99_us, r->decisions.p99_us);
      cpu_sum += r->decisions.cpu_mean_us * static_cast<double>(r->decisions.decisions);
      s.decision_cpu_p99_us = std::max(s.decision_cpu_p99_us, r->decisions.cpu_p99_us);
      s.wall_seconds_mean += r->wall_seconds / static_cast<double>(runs.size());
      points = std::min(points, r->curve.size());
    }
    MeanSd(at100, &s.unallocated_at_100_mean, &s.unallocated_at_100_sd);
    MeanSd(at_end, &s.unallocated_at_end_mean, &s.unallocated_at_end_sd);
    s.decision_mean_us = decisions > 0 ? decision_sum / static_cast<double>(decisions) : 0;
    s.decision_cpu_mean_us = decisions > 0 ? cpu_sum / static_cast<double>(decisions) : 0;
    for (std::size_t i = 0; i < points; ++i) {
      CurvePoint p{runs.front()->curve[i].arrived_percent, 0};
      for (const FillResult* r : runs) p.allocated_percent += r->curve[i].allocated_percent;
      p.allocated_percent /= static_cast<double>(runs.size());
      s.curve.push_back(p);
    }
  }
  return summaries;
}

std::string FillTable(const std::vector<PolicySummary>& summaries, double target_ratio) {
  const std::string end = Fixed(target_ratio * 100, 0) + "%";
  std::vector<std::vector<std::string>> rows = {
      {"policy", "runs", "unallocated GPU % @100% arrived",
       "unallocated GPU % @" + end + " arrived", "decision mean us", "decision p99 us",
       "cpu mean us", "cpu p99 us", "run s"}};
  for (const PolicySummary& s : summaries) {
    rows.push_back(
        {s.policy, std::to_string(s.runs),
         Fixed(s.unallocated_at_100_mean, 2) + " +- " + Fixed(s.unallocated_at_100_sd, 2),
         Fixed(s.unallocated_at_end_mean, 2) + " +- " + Fixed(s.unallocated_at_end_sd, 2),
         Fixed(s.decision_mean_us, 1), Fixed(s.decision_p99_us, 1),
         Fixed(s.decision_cpu_mean_us, 1), Fixed(s.decision_cpu_p99_us, 1),
         Fixed(s.wall_seconds_mean, 2)});
  }
  return Columns(rows);
}

namespace {
std::string Clock(double seconds) {
  const auto total = static_cast<long long>(std::llround(std::max(0.0, seconds)));
  char buffer[32];
  if (total >= 3600) {
    std::snprintf(buffer, sizeof buffer, "%lld:%02lld:%02lld", total / 3600, total / 60 % 60,
                  total % 60);
  } else {
    std::snprintf(buffer, sizeof buffer, "%lld:%02lld", total / 60, total % 60);
  }
  return buffer;
}
}  // namespace

std::string ProgressLine(std::size_t done, std::size_t total, double elapsed_seconds) {
  std::string line = std::to_string(done) + "/" + std::to_string(total) + " runs, " +
                     Clock(elapsed_seconds) + " elapsed";
  if (done > 0 && done < total) {
    const double left =
        elapsed_seconds / static_cast<double>(done) * static_cast<double>(total - done);
    line += ", about " + Clock(left) + " left";
  }
  return line;
}

std::string FillCurveCsv(const std::vector<FillResult>& results) {
  std::ostringstream out;
  out << "policy,seed,arrived_percent,allocated_percent\n";
  for (const FillResult& r : results) {
    for (const CurvePoint& p : r.curve) {
      out << r.policy << ',' << r.seed << ',' << Fixed(p.arrived_percent, 0) << ','
          << Fixed(p.allocated_percent, 4) << '\n';
    }
  }
  return out.str();
}

std::string FillRunsCsv(const std::vector<FillResult>& results) {
  std::ostringstream out;
  out << "policy,seed,unallocated_at_100,unallocated_at_end,pods_arrived,pods_placed,pods_failed,"
         "decision_mean_us,decision_p99_us,wall_seconds,failed_by_kind_at_100\n";
  for (const FillResult& r : results) {
    out << r.policy << ',' << r.seed << ',' << Fixed(r.unallocated_at_100, 4) << ','
        << Fixed(r.unallocated_at_end, 4) << ',' << r.pods_arrived << ',' << r.pods_placed << ','
        << r.pods_failed << ',' << Fixed(r.decisions.mean_us, 2) << ','
        << Fixed(r.decisions.p99_us, 2) << ',' << Fixed(r.wall_seconds, 3) << ',';
    for (const auto& [kind, count] : r.failed_by_kind_at_100) out << kind << ':' << count << ' ';
    out << '\n';
  }
  return out.str();
}

namespace {

// One chart panel: allocation against arrived demand over [x0, x1] x [y0, y1], grid every
// `x_step` / `y_step`, the ideal line dashed, one line per policy.
struct Panel {
  double left, top, width, height;
  double x0, x1, y0, y1;
  int x_step, y_step;
  std::string caption;
};

void DrawPanel(std::ostringstream& out, const std::vector<PolicySummary>& summaries,
               const Panel& p) {
  const auto x = [&](double v) { return p.left + (v - p.x0) / (p.x1 - p.x0) * p.width; };
  const auto y = [&](double v) { return p.top + (1.0 - (v - p.y0) / (p.y1 - p.y0)) * p.height; };
  out << "<text x=\"" << p.left << "\" y=\"" << p.top - 8 << "\" font-size=\"12\">"
      << EscapeXml(p.caption) << "</text>\n";
  for (double t = std::ceil(p.y0 / p.y_step) * p.y_step; t <= p.y1 + 1e-9; t += p.y_step) {
    out << "<line x1=\"" << p.left << "\" x2=\"" << p.left + p.width << "\" y1=\"" << y(t)
        << "\" y2=\"" << y(t) << "\" stroke=\"#e5e5e5\"/>\n";
    out << "<text x=\"" << p.left - 8 << "\" y=\"" << y(t) + 4 << "\" text-anchor=\"end\">" << t
        << "</text>\n";
  }
  for (double t = std::ceil(p.x0 / p.x_step) * p.x_step; t <= p.x1 + 1e-9; t += p.x_step) {
    out << "<line x1=\"" << x(t) << "\" x2=\"" << x(t) << "\" y1=\"" << p.top << "\" y2=\""
        << p.top + p.height << "\" stroke=\"#e5e5e5\"/>\n";
    out << "<text x=\"" << x(t) << "\" y=\"" << p.top + p.height + 18
        << "\" text-anchor=\"middle\">" << t << "</text>\n";
  }
  out << "<rect x=\"" << p.left << "\" y=\"" << p.top << "\" width=\"" << p.width << "\" height=\""
      << p.height << "\" fill=\"none\" stroke=\"#333\"/>\n";
  out << "<svg x=\"" << p.left << "\" y=\"" << p.top << "\" width=\"" << p.width << "\" height=\""
      << p.height << "\" viewBox=\"" << p.left << ' ' << p.top << ' ' << p.width << ' ' << p.height
      << "\">\n";
  // The ideal: everything that arrived is allocated, up to capacity.
  out << "<polyline fill=\"none\" stroke=\"#999\" stroke-dasharray=\"4 4\" points=\"" << x(0) << ','
      << y(0) << ' ' << x(100) << ',' << y(100) << ' ' << x(std::max(p.x1, 100.0)) << ',' << y(100)
      << "\"/>\n";
  std::size_t color = 0;
  for (const PolicySummary& s : summaries) {
    const char* stroke = kColors[color++ % std::size(kColors)];
    out << "<polyline fill=\"none\" stroke=\"" << stroke << "\" stroke-width=\"2\" points=\"";
    out << Fixed(x(0), 1) << ',' << Fixed(y(0), 1);
    for (const CurvePoint& c : s.curve) {
      out << ' ' << Fixed(x(c.arrived_percent), 1) << ',' << Fixed(y(c.allocated_percent), 1);
    }
    out << "\"/>\n";
  }
  out << "</svg>\n";
}

}  // namespace

std::string AllocationSvg(const std::vector<PolicySummary>& summaries, std::string_view title) {
  constexpr double kWidth = 760, kHeight = 900;
  constexpr double kLeft = 70, kRight = 190;
  const double plot_w = kWidth - kLeft - kRight;
  double x_max = 100;
  for (const PolicySummary& s : summaries) {
    if (!s.curve.empty()) x_max = std::max(x_max, s.curve.back().arrived_percent);
  }
  x_max = std::ceil(x_max / 10) * 10;
  // The zoom: 80 % arrived to the end, where the policies part; y spans their allocations there.
  const double zoom_x0 = std::min(80.0, x_max - 10);
  double low = 100, high = 0;
  for (const PolicySummary& s : summaries) {
    for (const CurvePoint& c : s.curve) {
      if (c.arrived_percent < zoom_x0) continue;
      low = std::min(low, c.allocated_percent);
      high = std::max(high, c.allocated_percent);
    }
  }
  if (low > high) low = 0, high = 100;
  low = std::max(0.0, std::floor(low - 0.5));
  high = std::min(100.0, std::ceil(high + 0.5));
  if (high - low < 2) low = std::max(0.0, high - 2);
  std::ostringstream out;
  out << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kWidth << "\" height=\"" << kHeight
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  out << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  out << "<text x=\"" << kLeft << "\" y=\"24\" font-size=\"15\">" << EscapeXml(title)
      << "</text>\n";
  DrawPanel(out, summaries, {kLeft, 60, plot_w, 340, 0, x_max, 0, 100, 10, 10, "whole run"});
  DrawPanel(out, summaries,
            {kLeft, 470, plot_w, 360, zoom_x0, x_max, low, high, 5, high - low > 12 ? 2 : 1,
             "zoom: " + Fixed(zoom_x0, 0) + "-" + Fixed(x_max, 0) + " % arrived"});
  out << "<text x=\"" << kLeft + plot_w / 2 << "\" y=\"" << kHeight - 18
      << "\" text-anchor=\"middle\">arrived GPU demand (% of cluster GPU capacity)</text>\n";
  out << "<text transform=\"translate(18,450) rotate(-90)\" text-anchor=\"middle\">GPU "
         "allocation ratio (%)</text>\n";
  std::size_t color = 0;
  double legend_y = 70;
  for (const PolicySummary& s : summaries) {
    const char* stroke = kColors[color++ % std::size(kColors)];
    const double lx = kLeft + plot_w + 14;
    out << "<line x1=\"" << lx << "\" x2=\"" << lx + 22 << "\" y1=\"" << legend_y << "\" y2=\""
        << legend_y << "\" stroke=\"" << stroke << "\" stroke-width=\"2\"/>\n";
    out << "<text x=\"" << lx + 28 << "\" y=\"" << legend_y + 4 << "\">" << EscapeXml(s.policy)
        << " (" << Fixed(s.unallocated_at_100_mean, 2) << "%)</text>\n";
    legend_y += 20;
  }
  out << "<text x=\"" << kLeft + plot_w + 14 << "\" y=\"" << legend_y + 10
      << "\" font-size=\"10\">(unallocated @100%)</text>\n";
  out << "</svg>\n";
  return out.str();
}

std::string ReplayTable(const std::vector<ReplayResult>& results) {
  std::vector<std::vector<std::string>> rows = {
      {"policy", "pods", "time-weighted GPU alloc %", "peak alloc %", "mean pending", "max pending",
       "waited", "never placed", "mean wait s", "decision mean us", "decision p99 us"}};
  for (const ReplayResult& r : results) {
    rows.push_back({r.policy, std::to_string(r.pods), Fixed(r.time_weighted_allocation_percent, 2),
                    Fixed(r.peak_allocation_percent, 2), Fixed(r.time_weighted_pending, 2),
                    std::to_string(r.max_pending), std::to_string(r.pods_waited),
                    std::to_string(r.pods_never_placed), Fixed(r.mean_wait_seconds, 0),
                    Fixed(r.decisions.mean_us, 1), Fixed(r.decisions.p99_us, 1)});
  }
  return Columns(rows);
}

std::string ReplayCsv(const std::vector<ReplayResult>& results) {
  std::ostringstream out;
  out << "policy,pods,time_weighted_allocation_percent,peak_allocation_percent,"
         "time_weighted_pending,max_pending,pods_waited,pods_never_placed,mean_wait_seconds,"
         "decision_mean_us,decision_p99_us\n";
  for (const ReplayResult& r : results) {
    out << r.policy << ',' << r.pods << ',' << Fixed(r.time_weighted_allocation_percent, 4) << ','
        << Fixed(r.peak_allocation_percent, 4) << ',' << Fixed(r.time_weighted_pending, 4) << ','
        << r.max_pending << ',' << r.pods_waited << ',' << r.pods_never_placed << ','
        << Fixed(r.mean_wait_seconds, 1) << ',' << Fixed(r.decisions.mean_us, 2) << ','
        << Fixed(r.decisions.p99_us, 2) << '\n';
  }
  return out.str();
}

std::string CompareTable(const std::vector<StrategyRow>& rows) {
  std::vector<std::vector<std::string>> table = {{"strategy", "GPUs needed", "note"}};
  for (const StrategyRow& r : rows) {
    table.push_back({r.strategy, std::to_string(r.gpus_needed), r.note});
  }
  return Columns(table);
}

std::string CompareCsv(const std::vector<StrategyRow>& rows) {
  std::ostringstream out;
  out << "strategy,gpus_needed,note\n";
  for (const StrategyRow& r : rows) {
    out << r.strategy << ',' << r.gpus_needed << ",\"" << r.note << "\"\n";
  }
  return out.str();
}

}  // namespace gpuslice::simulator
