// `gpuslice simulate`: runs the placement engine over a workload — the built-in synthetic one by
// default, or trace files — and reports the GPU allocation each policy reaches (fill), the
// capacity-planning view (replay), or how many GPUs each sharing strategy needs (compare).
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/status.h"
#include "placement/online_task_types.h"
#include "placement/placement_policy.h"
#include "simulator/parallel.h"
#include "simulator/report.h"
#include "simulator/simulator.h"
#include "simulator/synthetic_workload.h"
#include "simulator/trace_csv.h"
#include "simulator/workload_variants.h"

namespace gpuslice::cli {
namespace {

namespace sim = gpuslice::simulator;

struct SimulateOptions {
  std::string mode = "fill";
  std::string nodes_path;
  std::vector<std::string> pods_paths;
  std::vector<std::string> policies;
  std::string seeds = "42-44";
  double ratio = 1.3;
  std::string out_dir = "simulate-out";
  std::string format = "table";
  int jobs = 1;
  int synthetic_nodes = 256;
  std::uint64_t synthetic_seed = 7;
  int replicas = 4;
  std::string tie_break = "lowest-name";
  std::string mig_model = "A100-SXM4-40GB";
  std::string knowledge = "given";
  std::string variants;         // a VariantSet spec; empty: run the --pods files themselves
  std::string model_sets_path;  // pod list whose restricted pods give the model-set pool
  bool write_variants = false;
  bool offline = false;  // add the offline reference column
  bool bound = false;    // add the headroom bound column
  double half_life_pods = placement::OnlineTaskTypesOptions{}.half_life_pods;
};

struct Workload {
  std::string name;
  std::vector<placement::NodeSpec> nodes;
  std::vector<sim::TracePod> pods;
};

Result<std::vector<std::uint64_t>> ParseSeeds(const std::string& text) {
  std::vector<std::uint64_t> seeds;
  std::stringstream in(text);
  std::string item;
  auto parse = [&](std::string_view s) -> Result<std::uint64_t> {
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec != std::errc() || end != s.data() + s.size() || s.empty()) {
      return InvalidArgument("--seeds: '" + std::string(s) +
                             "' is not a seed; use a list like 42,43 or a range like 42-51");
    }
    return value;
  };
  while (std::getline(in, item, ',')) {
    const std::size_t dash = item.find('-');
    if (dash == std::string::npos) {
      GPUSLICE_ASSIGN_OR_RETURN(const std::uint64_t seed, parse(item));
      seeds.push_back(seed);
      continue;
    }
    GPUSLICE_ASSIGN_OR_RETURN(const std::uint64_t first, parse(item.substr(0, dash)));
    GPUSLICE_ASSIGN_OR_RETURN(const std::uint64_t last, parse(item.substr(dash + 1)));
    if (last < first || last - first > 10000) {
      return InvalidArgument("--seeds: range '" + item + "' is empty or too long");
    }
    for (std::uint64_t s = first; s <= last; ++s) seeds.push_back(s);
  }
  if (seeds.empty()) return InvalidArgument("--seeds: no seeds given");
  return seeds;
}

std::string NodesPathFor(const SimulateOptions& options, const std::string& pods_path) {
  if (!options.nodes_path.empty()) return options.nodes_path;
  // The trace keeps its node list beside the pod lists.
  return (std::filesystem::path(pods_path).parent_path() / "openb_node_list_gpu_node.csv").string();
}

// The variants of --variants, generated from the single --pods file (docs/simulator.md).
Result<std::vector<Workload>> GenerateVariants(const SimulateOptions& options) {
  if (options.pods_paths.size() != 1) {
    return InvalidArgument(
        "--variants needs exactly one --pods file to generate from (the "
        "trace's openb_pod_list_default.csv)");
  }
  const std::string& base_path = options.pods_paths.front();
  GPUSLICE_ASSIGN_OR_RETURN(const std::vector<sim::VariantName> names,
                            sim::VariantSet(options.variants));
  GPUSLICE_ASSIGN_OR_RETURN(const std::vector<placement::NodeSpec> nodes,
                            sim::ReadNodeCsv(NodesPathFor(options, base_path)));
  GPUSLICE_ASSIGN_OR_RETURN(const std::vector<sim::TracePod> base, sim::ReadPodCsv(base_path));
  std::string sets_path = options.model_sets_path;
  if (sets_path.empty()) {
    const auto beside =
        std::filesystem::path(base_path).parent_path() / "openb_pod_list_gpuspec10.csv";
    if (std::filesystem::exists(beside)) sets_path = beside.string();
  }
  std::vector<sim::ModelSetWeight> sets;
  if (!sets_path.empty()) {
    GPUSLICE_ASSIGN_OR_RETURN(const std::vector<sim::TracePod> with_sets,
                              sim::ReadPodCsv(sets_path));
    sets = sim::ModelSetsOf(with_sets);
  }
  if (sets.empty()) sets = sim::SingleModelSets(nodes);
  std::vector<Workload> workloads;
  for (const sim::VariantName& v : names) {
    Workload w;
    w.name = v.name;
    w.nodes = nodes;
    GPUSLICE_ASSIGN_OR_RETURN(w.pods, sim::GenerateVariant(base, nodes, sets, v.mix, v.seed));
    workloads.push_back(std::move(w));
  }
  return workloads;
}

Result<std::vector<Workload>> LoadWorkloads(const SimulateOptions& options) {
  std::vector<Workload> workloads;
  if (options.pods_paths.empty()) {
    if (!options.variants.empty()) {
      return InvalidArgument(
          "--variants needs the pod list to generate from: --pods "
          "../shared/data/alibaba-gpu-v2023/openb_pod_list_default.csv");
    }
    if (!options.nodes_path.empty()) {
      return InvalidArgument("--nodes needs --pods (or neither, for the built-in workload)");
    }
    sim::SyntheticOptions synthetic;
    synthetic.seed = options.synthetic_seed;
    synthetic.node_count = options.synthetic_nodes;
    Workload w;
    w.name = "synthetic";
    w.nodes = sim::SyntheticCluster(synthetic);
    w.pods = sim::SyntheticPods(w.nodes, synthetic);
    workloads.push_back(std::move(w));
    return workloads;
  }
  if (!options.variants.empty()) return GenerateVariants(options);
  for (const std::string& pods_path : options.pods_paths) {
    const std::string nodes_path = NodesPathFor(options, pods_path);
    if (options.nodes_path.empty() && !std::filesystem::exists(nodes_path)) {
      return InvalidArgument("--pods " + pods_path + ": give --nodes (no " + nodes_path + ")");
    }
    Workload w;
    w.name = std::filesystem::path(pods_path).stem().string();
    GPUSLICE_ASSIGN_OR_RETURN(w.nodes, sim::ReadNodeCsv(nodes_path));
    GPUSLICE_ASSIGN_OR_RETURN(w.pods, sim::ReadPodCsv(pods_path));
    workloads.push_back(std::move(w));
  }
  return workloads;
}

Status WriteText(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  if (!out) return Unavailable("cannot write '" + path.string() + "'");
  return Status::Ok();
}

std::string Fixed2(double value) {
  std::ostringstream out;
  out.setf(std::ios::fixed);
  out.precision(2);
  out << value;
  return out.str();
}

// Runs done / total, elapsed and an estimate, rewritten in place on stderr while it is a
// terminal; nothing when stderr is piped or redirected. Called from the worker threads.
class Progress {
 public:
  explicit Progress(std::size_t total)
      : total_(total), shown_(isatty(STDERR_FILENO) == 1 && total > 1) {
    Show();
  }
  void RunDone() {
    const std::lock_guard<std::mutex> lock(mutex_);
    ++done_;
    Show();
  }
  void Finish() {
    if (shown_) std::cerr << "\n";
  }

 private:
  void Show() {
    if (!shown_) return;
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    std::cerr << "\r\x1b[Ksimulate: " << sim::ProgressLine(done_, total_, elapsed) << std::flush;
  }
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  const std::size_t total_;
  const bool shown_;
  std::size_t done_ = 0;
  std::mutex mutex_;
};

Status RunFillMode(const SimulateOptions& options, const std::vector<Workload>& workloads,
                   const std::vector<std::uint64_t>& seeds, const std::filesystem::path& out_dir,
                   std::ostream& out) {
  struct Job {
    std::size_t workload;
    std::string policy;
    sim::WorkloadKnowledge knowledge;
    std::uint64_t seed;
  };
  std::vector<sim::WorkloadKnowledge> modes;
  if (options.knowledge != "online") modes.push_back(sim::WorkloadKnowledge::kGiven);
  if (options.knowledge != "given") modes.push_back(sim::WorkloadKnowledge::kOnline);
  // One column per run label: policies without workload knowledge run once.
  std::vector<std::string> labels;
  std::vector<Job> jobs;
  std::vector<std::string> policies = options.policies;
  if (options.offline) policies.emplace_back("offline");
  if (options.bound) policies.emplace_back("bound");
  for (std::size_t w = 0; w < workloads.size(); ++w) {
    for (const std::string& policy : policies) {
      for (const sim::WorkloadKnowledge mode : modes) {
        if (mode != modes.front() && !sim::UsesWorkloadKnowledge(policy)) continue;
        if (w == 0) labels.push_back(sim::RunLabel(policy, mode));
        for (const std::uint64_t seed : seeds) jobs.push_back({w, policy, mode, seed});
      }
    }
  }
  std::vector<Result<sim::FillResult>> results(jobs.size(),
                                               Result<sim::FillResult>(Internal("not run")));
  sim::FillOptions fill;
  fill.target_ratio = options.ratio;
  GPUSLICE_ASSIGN_OR_RETURN(fill.tie_break, placement::ParseTieBreak(options.tie_break));
  fill.online.half_life_pods = options.half_life_pods;
  Progress progress(jobs.size());
  sim::ParallelFor(jobs.size(), options.jobs, [&](std::size_t i) {
    sim::FillOptions run = fill;
    run.seed = jobs[i].seed;
    run.knowledge = jobs[i].knowledge;
    const Workload& w = workloads[jobs[i].workload];
    if (jobs[i].policy == "offline") {
      results[i] = sim::RunOfflineReference(w.nodes, w.pods, run);
    } else if (jobs[i].policy == "bound") {
      results[i] = sim::RunUpperBound(w.nodes, w.pods, run);
    } else {
      results[i] = sim::RunFill(w.nodes, w.pods, jobs[i].policy, run);
    }
    progress.RunDone();
  });
  progress.Finish();
  std::ostringstream summary_csv;
  summary_csv << "workload,policy,runs,unallocated_at_100_mean,unallocated_at_100_sd,"
                 "unallocated_at_end_mean,unallocated_at_end_sd,decision_mean_us,"
                 "decision_p99_us,run_seconds_mean,decision_cpu_mean_us,decision_cpu_p99_us\n";
  std::vector<std::vector<sim::PolicySummary>> all;
  for (std::size_t w = 0; w < workloads.size(); ++w) {
    std::vector<sim::FillResult> mine;
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      if (jobs[i].workload != w) continue;
      if (!results[i].ok()) {
        return results[i].status().WithContext(workloads[w].name + ", policy " + jobs[i].policy +
                                               ", seed " + std::to_string(jobs[i].seed));
      }
      mine.push_back(*results[i]);
    }
    const std::vector<sim::PolicySummary> summaries = sim::Summarize(mine);
    const std::string& name = workloads[w].name;
    const std::filesystem::path svg = out_dir / (name + "-allocation.svg");
    GPUSLICE_RETURN_IF_ERROR(WriteText(
        svg, sim::AllocationSvg(summaries, name + ": GPU allocation vs arrived demand (" +
                                               std::to_string(seeds.size()) + " seeds)")));
    GPUSLICE_RETURN_IF_ERROR(
        WriteText(out_dir / (name + "-fill-runs.csv"), sim::FillRunsCsv(mine)));
    GPUSLICE_RETURN_IF_ERROR(
        WriteText(out_dir / (name + "-fill-curve.csv"), sim::FillCurveCsv(mine)));
    for (const sim::PolicySummary& s : summaries) {
      summary_csv << name << ',' << s.policy << ',' << s.runs << ',' << s.unallocated_at_100_mean
                  << ',' << s.unallocated_at_100_sd << ',' << s.unallocated_at_end_mean << ','
                  << s.unallocated_at_end_sd << ',' << s.decision_mean_us << ','
                  << s.decision_p99_us << ',' << s.wall_seconds_mean << ','
                  << s.decision_cpu_mean_us << ',' << s.decision_cpu_p99_us << '\n';
    }
    if (options.format == "table") {
      out << "== " << name << ": " << workloads[w].nodes.size() << " nodes, "
          << workloads[w].pods.size() << " pods in the workload, filled to " << options.ratio * 100
          << "% of GPU capacity, seeds " << options.seeds << "\n";
      out << sim::FillTable(summaries, options.ratio);
      out << "chart: " << svg.string() << "\n\n";
    }
    all.push_back(summaries);
  }
  const std::filesystem::path summary_path = out_dir / "fill-summary.csv";
  GPUSLICE_RETURN_IF_ERROR(WriteText(summary_path, summary_csv.str()));
  if (options.format == "csv") {
    out << summary_csv.str();
    return Status::Ok();
  }
  if (workloads.size() > 1) {
    out << "== unallocated GPU % at 100% arrived, mean (sd) over seeds " << options.seeds << "\n";
    out << "workload";
    for (const std::string& p : labels) out << " | " << p;
    out << "\n";
    for (std::size_t w = 0; w < workloads.size(); ++w) {
      out << workloads[w].name;
      for (const sim::PolicySummary& s : all[w]) {
        out << " | " << Fixed2(s.unallocated_at_100_mean) << " (" << Fixed2(s.unallocated_at_100_sd)
            << ")";
      }
      out << "\n";
    }
  }
  out << "summary: " << summary_path.string() << "\n";
  return Status::Ok();
}

Status RunReplayMode(const SimulateOptions& options, const std::vector<Workload>& workloads,
                     const std::vector<std::uint64_t>& seeds, const std::filesystem::path& out_dir,
                     std::ostream& out) {
  GPUSLICE_ASSIGN_OR_RETURN(const placement::TieBreak tie_break,
                            placement::ParseTieBreak(options.tie_break));
  for (const Workload& w : workloads) {
    std::vector<Result<sim::ReplayResult>> results(options.policies.size(),
                                                   Result<sim::ReplayResult>(Internal("not run")));
    sim::ParallelFor(options.policies.size(), options.jobs, [&](std::size_t i) {
      sim::ReplayOptions replay;
      replay.seed = seeds.front();
      replay.tie_break = tie_break;
      results[i] = sim::RunReplay(w.nodes, w.pods, options.policies[i], replay);
    });
    std::vector<sim::ReplayResult> done;
    for (std::size_t i = 0; i < results.size(); ++i) {
      if (!results[i].ok()) {
        return results[i].status().WithContext(w.name + ", policy " + options.policies[i]);
      }
      done.push_back(*results[i]);
    }
    const std::filesystem::path csv = out_dir / (w.name + "-replay.csv");
    GPUSLICE_RETURN_IF_ERROR(WriteText(csv, sim::ReplayCsv(done)));
    if (options.format == "csv") {
      out << sim::ReplayCsv(done);
    } else {
      out << "== " << w.name << ": replay of " << w.pods.size() << " pods on " << w.nodes.size()
          << " nodes (arrivals and departures at trace times)\n"
          << sim::ReplayTable(done) << "csv: " << csv.string() << "\n\n";
    }
  }
  return Status::Ok();
}

Status RunCompareMode(const SimulateOptions& options, const std::vector<Workload>& workloads,
                      const std::vector<std::uint64_t>& seeds, const std::filesystem::path& out_dir,
                      std::ostream& out) {
  for (const Workload& w : workloads) {
    sim::CompareOptions compare;
    compare.time_slicing_replicas = options.replicas;
    compare.seed = seeds.front();
    compare.mig_model = options.mig_model;
    GPUSLICE_ASSIGN_OR_RETURN(const std::vector<sim::StrategyRow> rows,
                              sim::CompareStrategies(w.pods, compare));
    const std::filesystem::path csv = out_dir / (w.name + "-compare.csv");
    GPUSLICE_RETURN_IF_ERROR(WriteText(csv, sim::CompareCsv(rows)));
    if (options.format == "csv") {
      out << sim::CompareCsv(rows);
    } else {
      out << "== " << w.name << ": GPUs needed by the workload's " << w.pods.size()
          << " pods under each sharing strategy\n"
          << sim::CompareTable(rows) << "csv: " << csv.string() << "\n\n";
    }
  }
  return Status::Ok();
}

Status RunSimulate(SimulateOptions options, std::ostream& out) {
  if (options.policies.empty()) {
    for (const std::string_view p : placement::PolicyNames()) options.policies.emplace_back(p);
  }
  for (const std::string& p : options.policies) {
    bool known = false;
    for (const std::string_view n : placement::PolicyNames()) known = known || n == p;
    if (!known) {
      std::string list;
      for (const std::string_view n : placement::PolicyNames()) list += " " + std::string(n);
      return InvalidArgument("--policy: unknown policy '" + p + "'; known:" + list);
    }
  }
  if (!(options.half_life_pods > 0)) {
    return InvalidArgument(
        "--half-life-pods must be > 0 (pods after which an observation "
        "counts half)");
  }
  if (options.ratio < 1.0 || options.ratio > 3.0) {
    return InvalidArgument("--ratio must be in 1.0..3.0 (the paper uses 1.3)");
  }
  GPUSLICE_ASSIGN_OR_RETURN(const std::vector<std::uint64_t> seeds, ParseSeeds(options.seeds));
  GPUSLICE_ASSIGN_OR_RETURN(const std::vector<Workload> workloads, LoadWorkloads(options));
  const std::filesystem::path out_dir(options.out_dir);
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec)
    return Unavailable("cannot create --out directory '" + options.out_dir + "': " + ec.message());
  if (options.write_variants) {
    for (const Workload& w : workloads) {
      GPUSLICE_RETURN_IF_ERROR(WriteText(out_dir / (w.name + ".csv"), sim::PodCsv(w.pods)));
    }
  }
  if (options.mode == "replay") return RunReplayMode(options, workloads, seeds, out_dir, out);
  if (options.mode == "compare") return RunCompareMode(options, workloads, seeds, out_dir, out);
  return RunFillMode(options, workloads, seeds, out_dir, out);
}

}  // namespace

void AddSimulateCommand(CLI::App& app, int* exit_code) {
  auto options = std::make_shared<SimulateOptions>();
  CLI::App* cmd = app.add_subcommand(
      "simulate",
      "Simulate GPU placement policies on a cluster and workload (built-in synthetic by default)");
  cmd->add_option("--mode", options->mode,
                  "fill: the FGD paper's protocol; replay: trace arrivals and departures; "
                  "compare: GPUs needed per sharing strategy")
      ->check(CLI::IsMember({"fill", "replay", "compare"}))
      ->capture_default_str();
  cmd->add_option("--nodes", options->nodes_path,
                  "Node CSV (sn,cpu_milli,memory_mib,gpu,model); default: "
                  "openb_node_list_gpu_node.csv beside the pod file");
  cmd->add_option("--pods", options->pods_paths,
                  "Pod CSV(s) in the trace's format; several run one after another");
  cmd->add_option("--policy", options->policies,
                  "Policies (comma-separated): random, best-fit, dot-product, gpu-packing, "
                  "gpu-clustering, fgd, gpuslice; default all")
      ->delimiter(',');
  cmd->add_option("--seeds", options->seeds, "Seeds: a list (42,43) or a range (42-51)")
      ->capture_default_str();
  cmd->add_option("--tie-break", options->tie_break,
                  "Among equal scores: lowest-name (the node whose name sorts first, as the FGD "
                  "authors' simulator does) or random (as kube-scheduler does); the random "
                  "policy is always random")
      ->check(CLI::IsMember({"lowest-name", "random"}))
      ->capture_default_str();
  cmd->add_option("--workload-knowledge", options->knowledge,
                  "Fill: where fgd and gpuslice get the workload's task types: given (from the "
                  "whole pod file, as in the FGD paper), online (learned from the pods placed so "
                  "far, as the scheduler extender does; reported as fgd-online, gpuslice-online) "
                  "or both")
      ->check(CLI::IsMember({"given", "online", "both"}))
      ->capture_default_str();
  cmd->add_option("--half-life-pods", options->half_life_pods,
                  "Online knowledge: pods after which an observed pod counts half")
      ->capture_default_str();
  cmd->add_option("--variants", options->variants,
                  "Generate workload variants from the one --pods file and run them instead: "
                  "tuning, reporting, all, or names like spec30-s2,share60-s3 (family spec|share|"
                  "multi|cpu, percent, generator seed); see docs/simulator.md");
  cmd->add_option("--model-sets", options->model_sets_path,
                  "Variants: pod list whose restricted pods' model sets (gpu_spec) and their "
                  "counts are the pool restrictions are drawn from; default "
                  "openb_pod_list_gpuspec10.csv beside the --pods file, else each model by GPUs");
  cmd->add_flag("--offline", options->offline,
                "Fill: add the offline reference column: the same pods placed in hindsight by "
                "the best of several offline packers (docs/simulator.md)");
  cmd->add_flag("--bound", options->bound,
                "Fill: add the headroom bound column: for the same pods, the least unallocated "
                "GPU % any placement could reach, knowing every pod in advance (an LP "
                "relaxation's dual; docs/simulator.md)");
  cmd->add_flag("--write-variants", options->write_variants,
                "Variants: also write each generated pod list to --out as <name>.csv");
  cmd->add_option("--ratio", options->ratio, "Fill: GPU demand as a multiple of capacity")
      ->capture_default_str();
  cmd->add_option("--out", options->out_dir, "Directory for the CSV files and the SVG chart")
      ->capture_default_str();
  cmd->add_option("--format", options->format, "What to print: table or csv")
      ->check(CLI::IsMember({"table", "csv"}))
      ->capture_default_str();
  cmd->add_option("--jobs,-j", options->jobs, "Runs in parallel")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd->add_option("--synthetic-nodes", options->synthetic_nodes,
                  "Nodes of the built-in synthetic cluster")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd->add_option("--synthetic-seed", options->synthetic_seed,
                  "Seed of the built-in synthetic cluster and workload")
      ->capture_default_str();
  cmd->add_option("--replicas", options->replicas, "Compare: time-slicing replicas per GPU")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  cmd->add_option("--mig-model", options->mig_model,
                  "Compare: the GPU model whose MIG profiles and placement rules the MIG strategy "
                  "uses (e.g. A100-SXM4-40GB, H100-80GB, A30)")
      ->capture_default_str();
  cmd->callback([options, exit_code] {
    const Status status = RunSimulate(*options, std::cout);
    if (!status.ok()) {
      std::cerr << "gpuslice simulate: " << status.message() << "\n";
      *exit_code = 1;
    }
  });
}

}  // namespace gpuslice::cli
