#include "kube/kube_client.h"

#include <curl/curl.h>

#include <fstream>
#include <mutex>
#include <sstream>

#include "kube/api_status.h"

namespace gpuslice::kube {
namespace {

struct EasyDeleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
struct MultiDeleter {
  void operator()(CURLM* h) const { curl_multi_cleanup(h); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using EasyHandle = std::unique_ptr<CURL, EasyDeleter>;
using HeaderList = std::unique_ptr<curl_slist, SlistDeleter>;

// A prepared request: the handle plus everything it points into, which must outlive it.
struct Request {
  EasyHandle handle;
  HeaderList headers;
  std::string body;
  std::string response;
  std::string error_buffer = std::string(CURL_ERROR_SIZE, '\0');
};

size_t AppendToString(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

void SetBlob(CURL* h, CURLoption option, const std::string& pem) {
  curl_blob blob{const_cast<char*>(pem.data()), pem.size(), CURL_BLOB_COPY};
  curl_easy_setopt(h, option, &blob);
}

void SetTls(CURL* h, const KubeConfig& config) {
  if (config.insecure_skip_tls_verify) {
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (!config.ca_data.empty())
    SetBlob(h, CURLOPT_CAINFO_BLOB, config.ca_data);
  else if (!config.ca_file.empty())
    curl_easy_setopt(h, CURLOPT_CAINFO, config.ca_file.c_str());
  curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
  curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
  if (!config.client_cert_data.empty())
    SetBlob(h, CURLOPT_SSLCERT_BLOB, config.client_cert_data);
  else if (!config.client_cert_file.empty())
    curl_easy_setopt(h, CURLOPT_SSLCERT, config.client_cert_file.c_str());
  if (!config.client_key_data.empty())
    SetBlob(h, CURLOPT_SSLKEY_BLOB, config.client_key_data);
  else if (!config.client_key_file.empty())
    curl_easy_setopt(h, CURLOPT_SSLKEY, config.client_key_file.c_str());
}

Result<std::string> BearerToken(const KubeConfig& config) {
  if (config.token_file.empty()) return config.token;
  std::ifstream in(config.token_file);
  if (!in) return Unavailable("cannot read token file '" + config.token_file + "'");
  std::stringstream text;
  text << in.rdbuf();
  std::string token = text.str();
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  return token;
}

Result<std::unique_ptr<Request>> Prepare(const KubeConfig& config, std::string_view method,
                                         const std::string& path_and_query, std::string body,
                                         std::string_view content_type) {
  auto request = std::make_unique<Request>();
  request->handle.reset(curl_easy_init());
  if (!request->handle) return Internal("curl_easy_init failed");
  CURL* h = request->handle.get();
  request->body = std::move(body);
  const std::string url = config.server + path_and_query;
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, std::string(method).c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, request->error_buffer.data());
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(config.connect_timeout.count()));
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, AppendToString);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &request->response);
  if (method != "GET" && method != "DELETE") {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, request->body.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request->body.size()));
  }
  SetTls(h, config);
  GPUSLICE_ASSIGN_OR_RETURN(std::string token, BearerToken(config));
  curl_slist* headers = curl_slist_append(nullptr, "Accept: application/json");
  headers = curl_slist_append(headers, ("Content-Type: " + std::string(content_type)).c_str());
  headers = curl_slist_append(headers, "User-Agent: gpuslice/0.1");
  if (!token.empty())
    headers = curl_slist_append(headers, ("Authorization: Bearer " + token).c_str());
  request->headers.reset(headers);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  return request;
}

Status TransportError(std::string_view context, CURLcode code, const std::string& buffer) {
  std::string detail = buffer.substr(0, buffer.find('\0'));  // NUL-terminated buffer
  if (detail.empty()) detail = curl_easy_strerror(code);
  return Unavailable(std::string(context) + ": " + detail);
}

long ResponseCode(CURL* h) {
  long code = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
  return code;
}

// Splits the watch stream into lines and hands each event to the handler.
struct WatchStream {
  const WatchHandler* handler;
  CURL* handle;
  std::string pending;     // bytes after the last newline
  std::string error_body;  // the body of a non-2xx answer
  Status parse_error;
  bool handler_done = false;

  static size_t OnData(char* data, size_t size, size_t count, void* user) {
    auto* self = static_cast<WatchStream*>(user);
    const size_t bytes = size * count;
    if (ResponseCode(self->handle) >= 300) {
      self->error_body.append(data, bytes);
      return bytes;
    }
    self->pending.append(data, bytes);
    size_t newline;
    while ((newline = self->pending.find('\n')) != std::string::npos) {
      const std::string line = self->pending.substr(0, newline);
      self->pending.erase(0, newline + 1);
      if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
      Result<WatchEvent> event = ParseWatchEventLine(line);
      if (!event.ok()) {
        self->parse_error = event.status();
        return 0;  // aborts the transfer
      }
      if (!(*self->handler)(*event)) {
        self->handler_done = true;
        return 0;
      }
    }
    return bytes;
  }
};

}  // namespace

Result<std::unique_ptr<KubeClient>> KubeClient::Create(KubeConfig config) {
  static std::once_flag curl_initialised;
  std::call_once(curl_initialised, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (config.server.rfind("https://", 0) != 0 && config.server.rfind("http://", 0) != 0)
    return InvalidArgument("API server '" + config.server + "' is not an http(s):// URL");
  while (!config.server.empty() && config.server.back() == '/') config.server.pop_back();
  for (const std::string* file :
       {&config.ca_file, &config.client_cert_file, &config.client_key_file}) {
    if (!file->empty() && !std::ifstream(*file))
      return Unavailable("cannot read TLS file '" + *file + "'");
  }
  return std::unique_ptr<KubeClient>(new KubeClient(std::move(config)));
}

Result<Json> KubeClient::Call(std::string_view method, const std::string& path_and_query,
                              std::string_view context, const std::string& body,
                              std::string_view content_type) {
  GPUSLICE_ASSIGN_OR_RETURN(std::unique_ptr<Request> request,
                            Prepare(config_, method, path_and_query, body, content_type));
  CURL* h = request->handle.get();
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(config_.request_timeout.count()));
  const CURLcode code = curl_easy_perform(h);
  if (code != CURLE_OK) return TransportError(context, code, request->error_buffer);
  const long http = ResponseCode(h);
  if (http < 200 || http >= 300) return StatusFromApiResponse(context, http, request->response);
  Json parsed = Json::parse(request->response, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded())
    return Internal(std::string(context) + ": the API server's answer is not JSON");
  return parsed;
}

Result<Json> KubeClient::Get(const ResourceRef& ref) {
  return Call("GET", ref.Path(), "GET " + ref.Describe());
}

Result<Json> KubeClient::List(const ResourceRef& collection, const ListOptions& options) {
  return Call("GET", collection.Path() + options.Query(false), "LIST " + collection.Describe());
}

Result<Json> KubeClient::Create(const ResourceRef& ref, const Json& object) {
  return Call("POST", ref.Path(), "POST " + ref.Describe(), object.dump());
}

Result<Json> KubeClient::Update(const ResourceRef& ref, const Json& object) {
  return Call("PUT", ref.Path(), "PUT " + ref.Describe(), object.dump());
}

Result<Json> KubeClient::Patch(const ResourceRef& ref, PatchType type, const Json& patch) {
  return Call("PATCH", ref.Path(), "PATCH " + ref.Describe(), patch.dump(), PatchContentType(type));
}

Result<Json> KubeClient::Delete(const ResourceRef& ref) {
  return Call("DELETE", ref.Path(), "DELETE " + ref.Describe());
}

Status KubeClient::Watch(const ResourceRef& collection, const ListOptions& options,
                         const WatchHandler& handler, const std::atomic<bool>& stop) {
  const std::string context = "WATCH " + collection.Describe();
  GPUSLICE_ASSIGN_OR_RETURN(
      std::unique_ptr<Request> request,
      Prepare(config_, "GET", collection.Path() + options.Query(true), "", "application/json"));
  CURL* h = request->handle.get();
  WatchStream stream{&handler, h, "", "", Status::Ok()};
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, WatchStream::OnData);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &stream);
  std::unique_ptr<CURLM, MultiDeleter> multi(curl_multi_init());
  curl_multi_add_handle(multi.get(), h);
  int running = 1;
  CURLcode result = CURLE_OK;
  while (running > 0 && !stop.load()) {
    if (curl_multi_perform(multi.get(), &running) != CURLM_OK) break;
    if (running > 0) curl_multi_poll(multi.get(), nullptr, 0, 100, nullptr);
  }
  int queued = 0;
  while (CURLMsg* message = curl_multi_info_read(multi.get(), &queued)) {
    if (message->msg == CURLMSG_DONE) result = message->data.result;
  }
  curl_multi_remove_handle(multi.get(), h);
  if (stop.load() || stream.handler_done) return Status::Ok();
  if (!stream.parse_error.ok()) return stream.parse_error.WithContext(context);
  if (result != CURLE_OK) return TransportError(context, result, request->error_buffer);
  const long http = ResponseCode(h);
  if (http < 200 || http >= 300) return StatusFromApiResponse(context, http, stream.error_body);
  return Status::Ok();
}

}  // namespace gpuslice::kube
