#include "simulator/trace_csv.h"

#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string_view>

namespace gpuslice::simulator {
namespace {

std::vector<std::string_view> SplitFields(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = line.find(',', start);
    if (comma == std::string_view::npos) {
      fields.push_back(line.substr(start));
      return fields;
    }
    fields.push_back(line.substr(start, comma - start));
    start = comma + 1;
  }
}

// A CSV table addressed by header name.
class CsvTable {
 public:
  static Result<CsvTable> Parse(const std::string& text, const std::string& source) {
    CsvTable table;
    table.source_ = source;
    std::istringstream in(text);
    std::string line;
    int line_no = 0;
    while (std::getline(in, line)) {
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) continue;
      std::vector<std::string_view> fields = SplitFields(line);
      if (table.header_.empty()) {
        for (std::size_t i = 0; i < fields.size(); ++i) {
          table.header_.emplace(std::string(fields[i]), i);
        }
        table.width_ = fields.size();
        continue;
      }
      if (fields.size() != table.width_) {
        return InvalidArgument(source + ":" + std::to_string(line_no) + ": expected " +
                               std::to_string(table.width_) + " comma-separated fields, found " +
                               std::to_string(fields.size()));
      }
      Row row;
      row.line = line_no;
      for (const std::string_view f : fields) row.fields.emplace_back(f);
      table.rows_.push_back(std::move(row));
    }
    if (table.header_.empty()) return InvalidArgument(source + ": empty file, no header line");
    return table;
  }

  Status Require(std::initializer_list<const char*> columns) const {
    for (const char* column : columns) {
      if (!header_.contains(column)) {
        return InvalidArgument(source_ + ":1: missing column '" + column + "'");
      }
    }
    return Status::Ok();
  }
  bool Has(const std::string& column) const { return header_.contains(column); }

  struct Row {
    int line = 0;
    std::vector<std::string> fields;
  };
  const std::vector<Row>& rows() const { return rows_; }

  const std::string& Text(const Row& row, const std::string& column) const {
    return row.fields[header_.at(column)];
  }

  Result<std::int64_t> Int(const Row& row, const std::string& column, bool empty_is_zero) const {
    const std::string& text = Text(row, column);
    if (text.empty() && empty_is_zero) return std::int64_t{0};
    std::int64_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size()) {
      return InvalidArgument(source_ + ":" + std::to_string(row.line) + ": column '" + column +
                             "' must be an integer, got '" + text + "'");
    }
    return value;
  }

  Status Error(const Row& row, const std::string& message) const {
    return InvalidArgument(source_ + ":" + std::to_string(row.line) + ": " + message);
  }

 private:
  std::string source_;
  std::map<std::string, std::size_t> header_;
  std::size_t width_ = 0;
  std::vector<Row> rows_;
};

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Unavailable("cannot open '" + path + "'");
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<std::string> SplitModels(const std::string& spec) {
  std::vector<std::string> models;
  std::size_t start = 0;
  while (start <= spec.size()) {
    const std::size_t bar = spec.find('|', start);
    const std::string model =
        spec.substr(start, bar == std::string::npos ? std::string::npos : bar - start);
    if (!model.empty()) models.push_back(model);
    if (bar == std::string::npos) break;
    start = bar + 1;
  }
  return models;
}

}  // namespace

Result<std::vector<placement::NodeSpec>> ParseNodeCsv(const std::string& text,
                                                      const std::string& source) {
  GPUSLICE_ASSIGN_OR_RETURN(CsvTable table, CsvTable::Parse(text, source));
  GPUSLICE_RETURN_IF_ERROR(table.Require({"sn", "cpu_milli", "memory_mib", "gpu", "model"}));
  std::vector<placement::NodeSpec> nodes;
  for (const CsvTable::Row& row : table.rows()) {
    placement::NodeSpec node;
    node.name = table.Text(row, "sn");
    GPUSLICE_ASSIGN_OR_RETURN(node.cpu_milli, table.Int(row, "cpu_milli", false));
    GPUSLICE_ASSIGN_OR_RETURN(node.memory_mib, table.Int(row, "memory_mib", false));
    GPUSLICE_ASSIGN_OR_RETURN(const std::int64_t gpus, table.Int(row, "gpu", true));
    node.gpu_model = table.Text(row, "model");
    if (node.cpu_milli < 0 || node.memory_mib < 0 || gpus < 0 || gpus > 1024) {
      return table.Error(row, "cpu_milli and memory_mib must be >= 0 and gpu in 0..1024");
    }
    if (gpus > 0 && node.gpu_model.empty()) {
      return table.Error(row, "node has GPUs but an empty 'model'");
    }
    node.gpu_count = static_cast<int>(gpus);
    nodes.push_back(std::move(node));
  }
  return nodes;
}

Result<std::vector<TracePod>> ParsePodCsv(const std::string& text, const std::string& source) {
  GPUSLICE_ASSIGN_OR_RETURN(CsvTable table, CsvTable::Parse(text, source));
  GPUSLICE_RETURN_IF_ERROR(
      table.Require({"name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli"}));
  const bool has_spec = table.Has("gpu_spec");
  const bool has_times = table.Has("creation_time") && table.Has("deletion_time");
  const bool has_phase = table.Has("pod_phase");
  std::vector<TracePod> pods;
  for (const CsvTable::Row& row : table.rows()) {
    TracePod pod;
    pod.spec.name = table.Text(row, "name");
    GPUSLICE_ASSIGN_OR_RETURN(pod.spec.cpu_milli, table.Int(row, "cpu_milli", false));
    GPUSLICE_ASSIGN_OR_RETURN(pod.spec.memory_mib, table.Int(row, "memory_mib", false));
    GPUSLICE_ASSIGN_OR_RETURN(const std::int64_t num_gpu, table.Int(row, "num_gpu", false));
    GPUSLICE_ASSIGN_OR_RETURN(const std::int64_t gpu_milli, table.Int(row, "gpu_milli", false));
    if (pod.spec.cpu_milli < 0 || pod.spec.memory_mib < 0) {
      return table.Error(row, "cpu_milli and memory_mib must be >= 0");
    }
    if (num_gpu < 0 || num_gpu > 1024) return table.Error(row, "num_gpu must be in 0..1024");
    if (gpu_milli < 0 || gpu_milli > placement::kMilliPerGpu) {
      return table.Error(row, "gpu_milli must be in 0..1000");
    }
    if ((num_gpu == 0) != (gpu_milli == 0)) {
      return table.Error(row, "num_gpu and gpu_milli must both be 0 or both be > 0");
    }
    if (num_gpu > 1 && gpu_milli != placement::kMilliPerGpu) {
      return table.Error(row, "a pod with num_gpu > 1 must have gpu_milli 1000");
    }
    pod.spec.num_gpu = static_cast<int>(num_gpu);
    pod.spec.gpu_milli = static_cast<int>(gpu_milli);
    if (has_spec) pod.spec.gpu_models = SplitModels(table.Text(row, "gpu_spec"));
    if (has_phase) pod.phase = table.Text(row, "pod_phase");
    if (has_times) {
      GPUSLICE_ASSIGN_OR_RETURN(pod.creation_time, table.Int(row, "creation_time", false));
      GPUSLICE_ASSIGN_OR_RETURN(pod.deletion_time, table.Int(row, "deletion_time", false));
    }
    pods.push_back(std::move(pod));
  }
  return pods;
}

Result<std::vector<placement::NodeSpec>> ReadNodeCsv(const std::string& path) {
  GPUSLICE_ASSIGN_OR_RETURN(const std::string text, ReadFile(path));
  return ParseNodeCsv(text, path);
}

Result<std::vector<TracePod>> ReadPodCsv(const std::string& path) {
  GPUSLICE_ASSIGN_OR_RETURN(const std::string text, ReadFile(path));
  return ParsePodCsv(text, path);
}

std::string DefaultTraceDir(const std::string& repo_root) {
  const std::filesystem::path dir =
      std::filesystem::path(repo_root) / ".." / "shared" / "data" / "alibaba-gpu-v2023";
  std::error_code ec;
  if (std::filesystem::is_directory(dir, ec)) return std::filesystem::weakly_canonical(dir, ec);
  return "";
}

}  // namespace gpuslice::simulator
